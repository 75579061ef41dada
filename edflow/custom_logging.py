"""``edflow.get_logger`` as edflow 0.4 had it: a standard ``logging.Logger`` named after a string or an object's
class, writing through tqdm so that messages do not break the progress bars."""
from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

ROOT_NAME = "edflow"


class _TqdmHandler(logging.Handler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a logging handler must never raise into the caller
            self.handleError(record)


def _root() -> logging.Logger:
    root = logging.getLogger(ROOT_NAME)
    if not any(isinstance(h, _TqdmHandler) for h in root.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False  # one line per message even when the application configured logging too
    return root


def get_logger(name, which=None, level=None) -> logging.Logger:
    """``get_logger("dim_callback")`` or ``get_logger(self)``; ``which`` (edflow's log sub-folder) is accepted and
    ignored: messages go to the terminal, scalars to the run's metrics.jsonl."""
    if not isinstance(name, str):
        name = type(name).__name__
    _root()
    logger = logging.getLogger(f"{ROOT_NAME}.{name}")
    if level is not None:
        logger.setLevel(level.upper() if isinstance(level, str) else level)
    return logger
