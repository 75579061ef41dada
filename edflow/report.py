"""``edflow report logs/<runs...>``: a markdown table across runs (mean ± std over the runs of each experiment) and
plots of every scalar against the step.

Runs are grouped by experiment (the config's ``experiment_name``, else the folder name without its timestamp and
seed suffix); runs of one experiment whose configs differ in more than the seed form separate groups, labelled by
the keys that differ. Each run contributes its evaluation scalars at the last evaluated step (``--at final``) or at
the step model selection kept (``--at best``, from train/best.yaml). Writes report.md, report.csv and
plots/<scalar>.png into ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

from edflow.config import flatten_keys
from edflow.runs import best_results, experiment_of, find_runs, results_at, run_config, scalar_series
from edflow.tables import format_mean_std, format_number, markdown_table, mean_std
from edflow.util import retrieve

# Keys that may differ between the runs of one experiment without making them different experiments.
IGNORED_KEYS = ("seed", "device", "num_workers", "experiment_name", "first_stage", "integrations")

EPILOG = """examples:
  edflow report logs/                                    every run under logs/
  edflow report logs/*_cmnist_end* --at best --out reports/end
  edflow report logs/ --metrics "test*/accuracy*" "test*/deo"
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edflow report", description="Tables and plots across runs.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders, or folders of runs such as logs/")
    p.add_argument("--at", choices=("final", "best"), default="final",
                   help="each run's last evaluation, or the one model selection kept (train/best.yaml)")
    p.add_argument("--out", default="report", help="folder for report.md, report.csv and plots/ (default: report)")
    p.add_argument("--metrics", nargs="*", default=None, metavar="PATTERN",
                   help="only these scalars, as shell patterns (default: every one)")
    p.add_argument("--ignore", nargs="*", default=[], metavar="KEY",
                   help=f"more config keys (a/b) that may differ within a group, besides {', '.join(IGNORED_KEYS)}")
    p.add_argument("--digits", type=int, default=4, help="significant digits in the tables")
    p.add_argument("--no-plots", action="store_true", help="only the tables")
    return p


# --- collecting --------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run: str
    group: str
    step: int
    values: dict[str, float]


def selected(values: Mapping[str, float], patterns: list[str] | None) -> dict[str, float]:
    if not patterns:
        return dict(values)
    return {k: v for k, v in values.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}


def group_labels(runs: list[str], ignored: Sequence[str]) -> dict[str, str]:
    """Run -> group label: the experiment, plus ``[key=value, ...]`` for config keys that differ among its runs."""
    configs = {run: run_config(run) for run in runs}
    experiments = {run: experiment_of(run, configs[run]) for run in runs}
    labels = {}
    for experiment in sorted(set(experiments.values())):
        members = [run for run in runs if experiments[run] == experiment]
        differing = differing_keys([configs[run] for run in members], ignored)
        for run in members:
            settings = ", ".join(f"{key}={retrieve(configs[run], key, default=None)}" for key in differing)
            labels[run] = f"{experiment} [{settings}]" if settings else experiment
    return labels


def differing_keys(configs: list[dict], ignored: Sequence[str]) -> list[str]:
    """Leaf keys (a/b) whose values are not the same in every config, leaving out ``ignored`` keys and sections."""
    def leaves(config):
        keys = set(flatten_keys(config))
        return {k for k in keys if not any(o.startswith(k + "/") for o in keys)}

    keys = sorted(set().union(*(leaves(c) for c in configs))) if configs else []
    keys = [k for k in keys if not any(k == i or k.startswith(i + "/") for i in ignored)]
    return [k for k in keys if len({repr(retrieve(c, k, default=None)) for c in configs}) > 1]


def collect(runs: list[str], at: str, patterns: list[str] | None, ignored: Sequence[str]) -> list[RunResult]:
    """Each run's evaluation scalars at its final or best step; runs without them are reported and left out."""
    found = {}
    for run in runs:
        found[run] = best_results(run) if at == "best" else results_at(run)
        if found[run] is None:
            what = "train/best.yaml (set model_selection in its config)" if at == "best" else "evaluation results"
            print(f"edflow report: {run} has no {what}; left out of the table", file=sys.stderr)
            del found[run]
    labels = group_labels(list(found), ignored)
    return [RunResult(run, labels[run], step, selected(values, patterns)) for run, (step, values) in found.items()]


@dataclass
class Summary:
    group: str
    metric: str
    mean: float
    std: float  # sample standard deviation over runs (ddof=1); nan for a single run
    n: int
    runs: list[str]


def summarize(results: list[RunResult]) -> list[Summary]:
    summaries = []
    for group in sorted({r.group for r in results}):
        members = [r for r in results if r.group == group]
        for metric in sorted(set().union(*(r.values for r in members))):
            having = [r for r in members if metric in r.values]
            mean, std = mean_std([r.values[metric] for r in having])
            summaries.append(Summary(group, metric, mean, std, len(having),
                                     [os.path.basename(r.run) for r in having]))
    return summaries


# --- writing -----------------------------------------------------------------------------------------------------
def mean_std_text(summary: Summary, digits: int) -> str:
    if summary.n == 1:
        return format_number(summary.mean, digits)
    return format_mean_std(summary.mean, summary.std, digits=digits, significant=True)


def summary_table(summaries: list[Summary], digits: int) -> str:
    """One row per group, one column per metric: mean ± std over the group's runs."""
    groups = sorted({s.group for s in summaries})
    metrics = sorted({s.metric for s in summaries})
    cell = {(s.group, s.metric): s for s in summaries}
    rows = []
    for group in groups:
        runs = max(s.n for s in summaries if s.group == group)
        rows.append([group, runs] + [mean_std_text(cell[group, m], digits) if (group, m) in cell else "-"
                                     for m in metrics])
    return markdown_table(["experiment", "runs"] + metrics, rows)


def runs_table(results: list[RunResult], digits: int) -> str:
    metrics = sorted(set().union(*(r.values for r in results))) if results else []
    rows = [[os.path.basename(r.run), r.group, r.step]
            + [format_number(r.values[m], digits) if m in r.values else "-" for m in metrics] for r in results]
    return markdown_table(["run", "experiment", "step"] + metrics, rows)


def write_csv(summaries: list[Summary], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["experiment", "metric", "mean", "std", "n", "runs"])
        for s in summaries:
            writer.writerow([s.group, s.metric, repr(s.mean), repr(s.std), s.n, ";".join(s.runs)])


def plot_name(key: str) -> str:
    return key.replace("/", "_").replace(" ", "_") + ".png"


def scalar_figure(key: str, series_by_run: Mapping[str, tuple[list[int], list[float]]]):
    """One scalar against the step, one line per run (labelled by its folder name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for run, (steps, values) in series_by_run.items():
        axis.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=os.path.basename(run))
    axis.set(xlabel="step", ylabel=key, title=key)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def plot_scalars(runs: list[str], folder: str, patterns: list[str] | None) -> list[str]:
    """plots/<scalar>.png for every scalar of the runs' metrics.jsonl."""
    import matplotlib.pyplot as plt

    series = {run: selected(scalar_series(run), patterns) for run in runs}
    os.makedirs(folder, exist_ok=True)
    paths = []
    for key in sorted(set().union(*series.values())):
        figure = scalar_figure(key, {run: scalars[key] for run, scalars in series.items() if key in scalars})
        path = os.path.join(folder, plot_name(key))
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def markdown_report(summaries: list[Summary], results: list[RunResult], plots: list[str], at: str, out: str,
                    digits: int) -> str:
    where = "best checkpoint (train/best.yaml)" if at == "best" else "last evaluation"
    parts = [f"# Report\n\nEvaluation scalars at each run's {where}; mean ± sample std (ddof=1) over the runs of "
             "each experiment.\n",
             summary_table(summaries, digits), "\n## Runs\n", runs_table(results, digits)]
    if plots:
        parts.append("\n## Scalars against the step\n")
        parts.extend(f"![{os.path.splitext(os.path.basename(p))[0]}]({os.path.relpath(p, out)})" for p in plots)
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        runs = find_runs(args.runs)
    except FileNotFoundError as error:
        print(f"edflow report: error: {error}", file=sys.stderr)
        sys.exit(2)
    if not runs:
        print(f"edflow report: error: no run folders in {args.runs}", file=sys.stderr)
        sys.exit(2)
    results = collect(runs, args.at, args.metrics, IGNORED_KEYS + tuple(args.ignore))
    summaries = summarize(results)
    os.makedirs(args.out, exist_ok=True)
    plots = [] if args.no_plots else plot_scalars(runs, os.path.join(args.out, "plots"), args.metrics)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(markdown_report(summaries, results, plots, args.at, args.out, args.digits))
    write_csv(summaries, os.path.join(args.out, "report.csv"))
    print(summary_table(summaries, args.digits))
    print(f"edflow report: wrote {args.out}/report.md, report.csv and {len(plots)} plots", file=sys.stderr)


if __name__ == "__main__":
    main()
