"""Experiment scripts of nullsample (command lines: `python -m nullsample.scripts.<name>`), apart from the library modules."""
