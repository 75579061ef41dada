"""Experiment scripts of iin (command lines: `python -m iin.scripts.<name>`), apart from the library modules."""
