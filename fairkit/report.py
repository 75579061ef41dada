"""Mean ± standard deviation over runs (seeds) for the methods' result tables (the EnD sweep, the latent
de-biasing table).

:func:`mean_std` is the one place that decides the spread: the sample standard deviation (``ddof=1``) by default, as
``edflow report``; ``ddof=0`` gives the population std (EnD's results.py). With fewer values than ``ddof + 1`` the
spread is undefined and :func:`mean_std` returns ``single`` for it: nan by default (as ``edflow report``); the EnD
sweep asks for 0.0. :func:`format_mean_std` writes a cell ``"m ± s"``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["mean_std", "format_mean_std"]


def mean_std(values: Iterable[float], *, ddof: int = 1, single: float = float("nan")) -> tuple[float, float]:
    """(mean, std with ``ddof``) of ``values``; the std is ``single`` when there are ``ddof`` values or fewer."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=ddof)) if len(values) > ddof else float(single)
    return float(values.mean()), std


def format_mean_std(mean: float, std: float, *, digits: int) -> str:
    """``"mean ± std"`` with ``digits`` decimals each."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
