"""Experiment scripts of fairgen (command lines: `python -m fairgen.scripts.<name>`), apart from the library modules."""
