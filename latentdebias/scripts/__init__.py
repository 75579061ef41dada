"""Experiment scripts of latentdebias (command lines: `python -m latentdebias.scripts.<name>`), apart from the library modules."""
