"""Figures made from committed result records (``make figures``): a headless backend and byte-reproducible PNGs."""
from __future__ import annotations

import csv
import os


def pyplot():
    """matplotlib.pyplot on the Agg backend, so figures render without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: str, *, dpi: int = 110) -> str:
    """Write ``figure`` to ``path`` and close it. PNG metadata would otherwise carry matplotlib's version string;
    without it, the same records give the same bytes on every run."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=dpi, metadata={"Software": None})
    pyplot().close(figure)
    return path


def read_records(path: str, *, required: tuple[str, ...]) -> list[dict]:
    """The rows of a records CSV; a missing file or column is an error that names the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"records file {path} not found (it is committed under results/)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def figures_main(make_figures, *, records: str, out: str, description: str, argv: list[str] | None = None) -> None:
    """The command line of a method's figure module: ``--records`` and ``--out``, then the paths written."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default=records, help="the committed records the figures are drawn from")
    parser.add_argument("--out", default=out, help="folder the figures are written to")
    args = parser.parse_args(argv)
    for path in make_figures(records=args.records, out=args.out):
        print(path)
