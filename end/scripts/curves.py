"""Per-epoch records of Biased-MNIST runs, kept small enough to commit, and the figure and table made from them.

    python -m end.scripts.curves export logs/<run> [logs/<run> ...] --out results/end/<study>   # copy the records
    python -m end.scripts.curves report results/end/<study>                                    # curves.png, table.md

``export`` writes, per run, ``<study>/<run name>/``: ``epochs.csv`` (one row per evaluated epoch: learning rate,
validation, biased and unbiased test accuracy), the resolved ``config.yaml`` and model selection's ``best.yaml``.
``report`` needs only those files, so the figure and the table regenerate from a fresh clone without training.
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import shutil

import yaml

from edflow.runs import run_config, scalar_series
from end.scripts.runs import PAPER_UNBIASED

COLUMNS = {"validation": "validation/accuracy", "biased": "test_biased/accuracy",
           "unbiased": "test_unbiased/accuracy", "lr": "train/lr"}


def epoch_rows(run: str) -> list[dict]:
    """One row per evaluated step of ``run``: step, epoch (1-based: epochs finished), lr and the accuracies (%)."""
    series = {name: dict(zip(*scalar_series(run).get(key, ([], [])))) for name, key in COLUMNS.items()}
    evaluated = sorted(series["validation"])
    steps_per_epoch = None
    rows = []
    for step in evaluated:
        lr_steps = [s for s in series["lr"] if s <= step]
        row = {"step": step, "lr": series["lr"][max(lr_steps)] if lr_steps else math.nan}
        row.update({name: round(100 * series[name][step], 3) for name in ("validation", "biased", "unbiased")
                    if step in series[name]})
        rows.append(row)
    if len(evaluated) > 1:
        steps_per_epoch = evaluated[1] - evaluated[0]
    for row in rows:
        row["epoch"] = round(row["step"] / steps_per_epoch) if steps_per_epoch else 1
    return rows


def export(run: str, out: str) -> str:
    """Copy ``run``'s small records into ``out/<run name without its timestamp>/``; returns that folder."""
    if not os.path.isfile(os.path.join(run, "metrics.jsonl")):
        raise SystemExit(f"{run} is not a run folder (it has no metrics.jsonl)")
    config = run_config(run)
    name = config.get("experiment_name") or os.path.basename(run.rstrip("/")).split("_", 1)[-1]
    folder = os.path.join(out, os.path.basename(run.rstrip("/")).split("_", 1)[-1] or name)
    os.makedirs(folder, exist_ok=True)
    rows = epoch_rows(run)
    with open(os.path.join(folder, "epochs.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "step", "lr", "validation", "biased", "unbiased"])
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    best = os.path.join(run, "train", "best.yaml")
    if os.path.isfile(best):
        shutil.copyfile(best, os.path.join(folder, "best.yaml"))
    return folder


def read_record(folder: str) -> dict:
    with open(os.path.join(folder, "config.yaml")) as f:
        config = yaml.safe_load(f)
    with open(os.path.join(folder, "epochs.csv")) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    loss, model, data = config.get("Loss", {}), config.get("Model", {}), config.get("Data", {})
    vanilla = not loss.get("alpha") and not loss.get("beta")
    label = ("vanilla" + (" (ReBias net)" if model.get("arch") == "rebias" else " (EnD net)") if vanilla
             else f"EnD (alpha {loss['alpha']:g}, beta {loss['beta']:g})")
    return {"folder": folder, "label": label, "method": "vanilla" if vanilla else "end", "rho": float(data["rho"]),
            "width": float(model.get("width", 1.0)), "rows": rows}


def records_in(study: str) -> list[dict]:
    return [read_record(os.path.dirname(path)) for path in sorted(glob.glob(os.path.join(study, "*", "epochs.csv")))]


def best_row(rows: list[dict]) -> dict:
    """The first epoch with the highest validation accuracy (EnD's code keeps the first of equal ones)."""
    return max(rows, key=lambda row: (row["validation"], -row["epoch"]))


def table(records: list[dict]) -> str:
    lines = ["| rho | method | epochs run | best epoch | validation | biased test | unbiased test | "
             "paper unbiased |", "|---|---|---|---|---|---|---|---|"]
    for record in sorted(records, key=lambda r: (-r["rho"], r["method"] != "vanilla")):
        best = best_row(record["rows"])
        paper = PAPER_UNBIASED[record["method"]].get(round(record["rho"], 3), math.nan)
        lines.append(f"| {record['rho']:g} | {record['label']} | {int(record['rows'][-1]['epoch'])} | "
                     f"{int(best['epoch'])} | {best['validation']:.1f} | {best['biased']:.1f} | "
                     f"{best['unbiased']:.1f} | {paper:g} |")
    return "\n".join(lines) + "\n"


def figure(records: list[dict], path: str) -> None:
    """Biased (dashed) and unbiased (solid) test accuracy per epoch, one panel per rho, the paper's unbiased accuracy
    dotted, the best validation epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rhos = sorted({r["rho"] for r in records}, reverse=True)
    fig, axes = plt.subplots(1, len(rhos), figsize=(6 * len(rhos), 4.2), squeeze=False, sharey=True)
    colours = {"vanilla": "tab:gray", "end": "tab:blue"}
    for ax, rho in zip(axes[0], rhos):
        for record in (r for r in records if r["rho"] == rho):
            epochs = [row["epoch"] for row in record["rows"]]
            colour = colours[record["method"]]
            ax.plot(epochs, [row["unbiased"] for row in record["rows"]], color=colour, label=f"{record['label']}: unbiased")
            ax.plot(epochs, [row["biased"] for row in record["rows"]], color=colour, ls="--", alpha=0.7,
                    label=f"{record['label']}: biased")
            best = best_row(record["rows"])
            ax.plot([best["epoch"]], [best["unbiased"]], "o", color=colour)
            paper = PAPER_UNBIASED[record["method"]].get(round(rho, 3))
            if paper is not None:
                ax.axhline(paper, color=colour, ls=":", lw=1)
        ax.set_title(f"rho = {rho:g} (dotted: the paper's unbiased accuracy; dot: best validation epoch)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="center left")  # the curves rise late: the left middle stays free
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(study: str) -> tuple[str, str]:
    records = records_in(study)
    if not records:
        raise SystemExit(f"{study} holds no <run>/epochs.csv; make them with `python -m end.scripts.curves export`")
    figure(records, os.path.join(study, "curves.png"))
    text = table(records)
    with open(os.path.join(study, "table.md"), "w") as f:
        f.write(text)
    return os.path.join(study, "curves.png"), text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="copy runs' per-epoch records into a study folder")
    exporting.add_argument("runs", nargs="+")
    exporting.add_argument("--out", required=True)
    reporting = commands.add_parser("report", help="curves.png and table.md of a study folder")
    reporting.add_argument("study")
    args = parser.parse_args(argv)
    if args.command == "export":
        for run in args.runs:
            print(export(run, args.out))
    else:
        path, text = report(args.study)
        print(text + f"\nfigure: {path}")


if __name__ == "__main__":
    main()
