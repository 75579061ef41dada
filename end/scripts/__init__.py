"""Experiment scripts of end (command lines: `python -m end.scripts.<name>`), apart from the library modules."""
