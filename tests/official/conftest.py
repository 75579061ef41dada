"""The ``compare`` fixture and the table of largest differences printed after the tests (``make official-check``).

``compare(what, ours, official, tol=1e-5) -> float``: the largest absolute difference of two arrays / tensors /
numbers (same shape required), recorded under the test module's method (``test_iin.py`` -> ``iin``) and ``what``,
and asserted to be at most ``tol * max(1, largest |official value|)``: absolute for values up to 1, relative for
larger ones (sums over thousands of pixels differ in float32 by their summation order). After the run, a table
lists per method what was compared, the largest difference and that difference relative to the values' size.
Helpers for loading the official code: ``_load.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

RECORDS = pytest.StashKey[dict]()


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _method(module_name: str) -> str:
    name = module_name.rsplit(".", 1)[-1]
    for prefix in ("test_", "official_"):
        name = name[len(prefix):] if name.startswith(prefix) else name
    return name


@pytest.fixture
def compare(request):
    records = request.config.stash.setdefault(RECORDS, {})
    method = _method(request.module.__name__)

    def check(what: str, ours, official, tol: float = 1e-5) -> float:
        ours, official = _as_array(ours), _as_array(official)
        assert ours.shape == official.shape, f"{what}: ours has shape {ours.shape}, the official {official.shape}"
        difference = float(np.max(np.abs(ours - official))) if ours.size else 0.0
        scale = max(1.0, float(np.max(np.abs(official))) if official.size else 0.0)
        key = (method, what)
        previous = records.get(key, (0.0, 0.0))
        records[key] = (max(previous[0], difference), max(previous[1], difference / scale))
        assert difference <= tol * scale, (f"{what}: ours and the official code differ by up to {difference:.3g} "
                                           f"(> {tol:g} x {scale:.3g})")
        return difference

    return check


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    records = config.stash.get(RECORDS, {})
    if not records:
        return
    terminalreporter.section("largest differences from the official code")
    width = max(len(what) for _, what in records)
    terminalreporter.write_line(f"  {'compared':<{width}}  {'max |diff|':>10}  {'relative':>8}")
    for method in sorted({m for m, _ in records}):
        terminalreporter.write_line(method)
        for (m, what), (difference, relative) in records.items():
            if m == method:
                terminalreporter.write_line(f"  {what:<{width}}  {difference:>10.3g}  {relative:>8.3g}")
