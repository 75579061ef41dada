from edflow.main import main

main()
