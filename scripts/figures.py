"""Every figure under results/ from the records committed there, with no training: ``make figures``
(``python -m scripts.figures [--results results]``).

- results/nullsample/accuracy_vs_hgr.png from variants.csv (``nullsample.scripts.figures``);
- results/fairgen/fairness_discrepancy.png and red_share.png from trajectories.csv and final.csv (``fairgen.scripts.figures``);
- results/latentdebias/deo_pairs.png from seeds_cpu.csv (``latentdebias.scripts.figures``);
- results/iin/samples.png, swap_color.png and swap_digit.png from the model weights and configs there, on
  ColorfulMNIST test digits (``iin.scripts.figures``; MNIST must be installed);
- for every EnD study folder under results/end that holds <run>/epochs.csv: its curves.png and table.md
  (``python -m end.scripts.curves report <study>``); none is an empty loop, not an error.
"""
from __future__ import annotations

import argparse
import glob
import os

from end.scripts import curves
from fairgen.scripts import figures as fairgen_figures
from iin.scripts import figures as iin_figures
from latentdebias.scripts import figures as latentdebias_figures
from nullsample.scripts import figures as nullsample_figures


def end_studies(results: str) -> list[str]:
    """Folders under ``results``/end holding <run>/epochs.csv (the layout ``end.scripts.curves export`` writes)."""
    found = glob.glob(os.path.join(results, "end", "**", "epochs.csv"), recursive=True)
    return sorted({os.path.dirname(os.path.dirname(path)) for path in found})


def make_all(*, results: str = "results") -> list[str]:
    """Write each figure beside its records; return the paths written."""
    paths = nullsample_figures.make_figures(records=os.path.join(results, "nullsample", "variants.csv"),
                                            out=os.path.join(results, "nullsample"))
    paths += fairgen_figures.make_figures(records=os.path.join(results, "fairgen"),
                                          out=os.path.join(results, "fairgen"))
    paths += latentdebias_figures.make_figures(records=os.path.join(results, "latentdebias"),
                                               out=os.path.join(results, "latentdebias"))
    paths += iin_figures.make_figures(records=os.path.join(results, "iin"), out=os.path.join(results, "iin"))
    for study in end_studies(results):
        paths.append(curves.report(study)[0])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="the folder holding the records (and the figures)")
    args = parser.parse_args(argv)
    for path in make_all(results=args.results):
        print(path)


if __name__ == "__main__":
    main()
