"""Summary tables across runs: mean ± standard deviation over runs (seeds), and markdown tables. ``edflow report``
and the methods' result tables (the EnD sweep, the latent de-biasing table) all compute and write their cells here.

:func:`mean_std` is the one place that decides the spread: the sample standard deviation (``ddof=1``) by default, as
``edflow report``; ``ddof=0`` gives the population std (EnD's results.py). With fewer values than ``ddof + 1`` the
spread is undefined and :func:`mean_std` returns ``single`` for it: nan by default (as ``edflow report``); the EnD
sweep asks for 0.0. :func:`format_mean_std` writes a cell ``"m ± s"``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["mean_std", "format_mean_std", "format_number", "markdown_table"]


def mean_std(values: Iterable[float], *, ddof: int = 1, single: float = float("nan")) -> tuple[float, float]:
    """(mean, std with ``ddof``) of ``values``; the std is ``single`` when there are ``ddof`` values or fewer."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=ddof)) if len(values) > ddof else float(single)
    return float(values.mean()), std


def format_mean_std(mean: float, std: float, *, digits: int, significant: bool = False) -> str:
    """``"mean ± std"`` with ``digits`` decimals each, or ``digits`` significant digits each (``significant``)."""
    spec = f".{digits}{'g' if significant else 'f'}"
    return f"{mean:{spec}} ± {std:{spec}}"


def format_number(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits."""
    return f"{value:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A markdown table with columns padded to equal width, readable in a terminal as well."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
