"""Latent de-biasing: wall and CPU time of each stage of the chain, and its share of the whole, measured in one run.

    python benchmarks/latentdebias_stages.py                                 # debug scale (edflow -d), seconds
    python benchmarks/latentdebias_stages.py --scale cpu --log-root logs
    python benchmarks/latentdebias_stages.py --scale cpu --stages synthetic augmented   # earlier stages must exist

The stages run in this process, one after the other, through :mod:`latentdebias.scripts.pipeline` (first stages found by
run name in the log root). ``--variant domdep|inversion`` times the extensions' synthetic and augmented stages.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from latentdebias.scripts.pipeline import format_timings, plan, run_stages  # noqa: E402


def warm_up() -> None:
    """Pay the one-time costs (imports, reading MNIST) before timing, so that they are not charged to the first
    stage."""
    import sklearn.svm  # noqa: F401
    import torch._dynamo  # noqa: F401  (imported lazily by the first optimiser)

    from fairkit.data.attribute_mnist import POOLS, load_pool

    for pool in POOLS:
        load_pool(pool)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=("debug", "cpu"), default="debug")
    p.add_argument("--variant", default="standard", choices=("standard", "domdep", "inversion"))
    p.add_argument("--stages", nargs="*", help="only these stage keys (target_clf protected_clf gan synthetic "
                                               "augmented)")
    p.add_argument("--log-root", default=None, help="default: a fresh temporary folder")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    log_root = args.log_root or tempfile.mkdtemp(prefix="latentdebias_bench_")
    warm_up()
    stages = plan("attrmnist", cpu=args.scale == "cpu", variant=args.variant)
    timings = run_stages(stages, log_root, debug=args.scale == "debug", only=args.stages)
    print(f"\nlatent de-biasing stages, Attribute MNIST, {args.scale} scale, {args.variant}, "
          f"{args.threads} thread(s), log root {log_root}\n")
    print(format_timings(timings))


if __name__ == "__main__":
    main()
