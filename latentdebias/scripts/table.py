"""The paper's results table from finished runs: baseline vs augmented target classifier, per target attribute and
per attribute category, AP / DEO / BA (in %) and KL as bootstrap medians with 95% intervals::

    python -m latentdebias.scripts.table --dataset attrmnist --cpu --log-root logs
    python -m latentdebias.scripts.table --dataset celeba --targets Smiling Bangs ... --log-root logs

Runs are found by name as :mod:`latentdebias.scripts.pipeline` names them; each run's numbers are those of the step its
model selection kept (best validation AP, ``train/best.yaml``), else of its last evaluation.
"""
from __future__ import annotations

import argparse
import csv
import os
from typing import Mapping, Sequence

import numpy as np

from edflow import tables
from edflow.first_stage import find_run
from edflow.runs import add_log_root_argument
from edflow.runs import best_results, results_at, run_config
from latentdebias.data import data_options
from latentdebias.scripts.pipeline import PipelineError, add_chain_arguments, plan

METRICS = ("ap", "deo", "ba", "kl")
PERCENT = {"ap": 100.0, "deo": 100.0, "ba": 100.0, "kl": 1.0}  # the paper's units
DIGITS = {"ap": 1, "deo": 1, "ba": 1, "kl": 2}
# CelebA's target attributes (Ramaswamy et al.; the spec's indices 1, 2, 3, 5, ..., 39) in the paper's three
# categories. The membership was reconstructed for this project; check it against the paper before quoting means.
CELEBA_CATEGORIES = {
    "inconsistently labelled": ("Big_Lips", "Big_Nose", "Oval_Face", "Pale_Skin", "Straight_Hair", "Wavy_Hair"),
    "gender-dependent": ("Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bushy_Eyebrows", "Pointy_Nose",
                         "Receding_Hairline", "Young"),
    "gender-independent": ("Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Chubby", "Eyeglasses", "Gray_Hair",
                           "High_Cheekbones", "Mouth_Slightly_Open", "Narrow_Eyes", "Smiling", "Wearing_Earrings",
                           "Wearing_Hat"),
}
CELEBA_TARGETS = tuple(sorted(name for names in CELEBA_CATEGORIES.values() for name in names))
# Paper, protected Male, category means (baseline, ours) as the spec quotes them.
PAPER_MEANS = {"inconsistently labelled": {"ap": (66.3, 65.2), "deo": (21.5, 16.5), "ba": (2.1, 0.5),
                                           "kl": (1.7, 1.3)}}


def named_run(name: str, *, log_root: str) -> str:
    run = find_run(name, log_root=log_root)
    if run is None:
        raise FileNotFoundError(f"no run named {name!r} with a checkpoint under {log_root}; run it with "
                                f"python -m latentdebias.scripts.pipeline first")
    return run


def run_results(run: str) -> dict[str, float]:
    """The evaluation at the step model selection kept (every evaluation of that step merged, the latest winning, so
    a re-evaluation with `edflow -p` updates it), else the last evaluation."""
    best = best_results(run)
    found = results_at(run, best[0]) if best else results_at(run)
    if not found:
        raise FileNotFoundError(f"run {run} has no evaluation results")
    return found[1]


def metric_cell(results: Mapping[str, float], split: str, metric: str) -> tuple[float, float, float]:
    """(median, low, high) in the paper's units; the point estimate when the run has no bootstrap."""
    scale = PERCENT[metric]
    key = f"{split}/{metric}"
    if f"{key}_median" in results:
        return tuple(scale * results.get(f"{key}_{part}", float("nan")) for part in ("median", "low", "high"))
    value = scale * results.get(key, float("nan"))
    return value, float("nan"), float("nan")


def central_value(runs: Sequence[Mapping[str, float]], split: str, metric: str) -> float:
    """The bootstrap median, averaged over the runs (training seeds)."""
    medians = [metric_cell(r, split, metric)[0] for r in runs]
    return float(np.mean(medians)) if np.isfinite(medians).all() else float("nan")


def format_cell(runs: Sequence[Mapping[str, float]], split: str, metric: str) -> str:
    """One run: median [95% bootstrap interval]; several (seeds): mean +- standard deviation of their medians."""
    digits = DIGITS[metric]
    if len(runs) > 1:
        medians = np.array([metric_cell(r, split, metric)[0] for r in runs])
        if not np.isfinite(medians).all():
            return "n/a"
        return tables.format_mean_std(*tables.mean_std(medians), digits=digits)
    median, low, high = metric_cell(runs[0], split, metric)
    if not np.isfinite(median):
        return "n/a"
    if np.isfinite(low):
        return f"{median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{median:.{digits}f}"


def seed_name(name: str, seed: int) -> str:
    """Seed 0 is the pipeline's run; other training seeds are runs named ``<name>_seed<k>``."""
    return name if seed == 0 else f"{name}_seed{seed}"


Rows = Mapping[str, tuple[list, list]]  # target -> (baseline results per seed, augmented results per seed)


def collect(dataset: str, log_root: str, cpu: bool = False, variant: str = "standard",
            targets: Sequence[str] | None = None, seeds: Sequence[int] = (0,)) -> dict[str, tuple[list, list]]:
    """target attribute -> (baseline results, augmented results), one per training seed."""
    stages = plan(dataset, cpu, variant, list(targets) if targets else None)
    names = {key: [s.name for s in stages if s.key == key] for key in ("target_clf", "augmented")}
    rows = {}
    for baseline, augmented in zip(names["target_clf"], names["augmented"]):
        runs = [[named_run(seed_name(name, seed), log_root=log_root) for seed in seeds]
                for name in (baseline, augmented)]
        target = data_options(run_config(runs[0][0]))["target"]
        rows[target] = ([run_results(r) for r in runs[0]], [run_results(r) for r in runs[1]])
    return rows


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def category_means(rows: Rows, split: str) -> dict[str, dict[str, tuple[float, float]]]:
    means = {}
    for category, members in CELEBA_CATEGORIES.items():
        present = [m for m in members if m in rows]
        if present:
            means[category] = {metric: tuple(finite_mean([central_value(rows[m][k], split, metric) for m in present])
                                             for k in (0, 1)) for metric in METRICS}
    return means


def format_table(rows: Rows, split: str, paper: bool = True) -> str:
    header = "| attribute | " + " | ".join(f"{m.upper()} baseline | {m.upper()} augmented" for m in METRICS) + " |"
    lines = [header, "|---|" + "---:|" * (2 * len(METRICS))]
    for target, (baseline, augmented) in rows.items():
        cells = [format_cell(runs, split, m) for m in METRICS for runs in (baseline, augmented)]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    for category, means in category_means(rows, split).items():
        cells = [f"{means[m][k]:.{DIGITS[m]}f}" for m in METRICS for k in (0, 1)]
        lines.append(f"| mean, {category} | " + " | ".join(cells) + " |")
    if paper:
        for category, means in PAPER_MEANS.items():
            cells = [f"{means[m][k]:.1f}" for m in METRICS for k in (0, 1)]
            lines.append(f"| paper: mean, {category} (CelebA) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def splits_of(rows: Rows) -> list[str]:
    keys = next(iter(rows.values()))[0][0]
    return [s for s in ("test", "test_biased") if f"{s}/ap" in keys]


def write_records(rows: Rows, seeds: Sequence[int], path: str) -> str:
    """The per-seed bootstrap medians behind the table, one row per (target, seed, split, metric), as CSV: what
    ``python -m latentdebias.scripts.figures`` draws (results/latentdebias/seeds_cpu.csv is this file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["target", "seed", "split", "metric", "baseline", "augmented"])
        for target, (baseline, augmented) in rows.items():
            for split in splits_of(rows):
                for metric in METRICS:
                    for seed, before, after in zip(seeds, baseline, augmented):
                        values = [metric_cell(r, split, metric)[0] for r in (before, after)]
                        if all(np.isfinite(values)):
                            writer.writerow([target, seed, split, metric, *(f"{v:.{DIGITS[metric]}f}" for v in values)])
    return path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m latentdebias.scripts.table", description=__doc__.split("\n\n")[0])
    add_chain_arguments(p, cpu="the CPU-scale runs (configs/cpu/ overlays)",
                        targets="target attributes (as given to the pipeline)")
    p.add_argument("--all-celeba-targets", action="store_true", help="the paper's 26 CelebA targets")
    p.add_argument("--seeds", nargs="*", type=int, default=[0],
                   help="training seeds: 0 is the pipeline's run, k > 0 the runs named <run name>_seed<k>")
    add_log_root_argument(p, help="where the pipeline's runs are")
    p.add_argument("--records", default=None, help="also write the per-seed medians as CSV here (the figure's records)")
    return p


def main(argv: list[str] | None = None) -> str:
    p = parser()
    args = p.parse_args(argv)
    targets = list(CELEBA_TARGETS) if args.all_celeba_targets else args.targets
    try:
        rows = collect(args.dataset, args.log_root, args.cpu, args.variant, targets, args.seeds)
    except PipelineError as error:  # e.g. --cpu for a dataset without CPU overlays
        p.error(str(error))
    text = "\n\n".join(f"Split `{split}`:\n\n{format_table(rows, split)}" for split in splits_of(rows))
    print(text)
    if args.records:
        print(f"per-seed records: {write_records(rows, args.seeds, args.records)}")
    return text


if __name__ == "__main__":
    main()
