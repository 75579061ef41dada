"""A sweep over rho, alpha, beta and seeds on Biased MNIST, reported as the paper reports it: for every rho, the
(alpha, beta) with the best mean validation accuracy over seeds, and the mean and std of its test accuracies.

    python -m end.scripts.sweep --rho 0.997 0.99 --seeds 0 1 2 --alpha 0.1 1 --beta 0.1 1 --vanilla
    python -m end.scripts.sweep ... --random 6         # 6 (alpha, beta) pairs drawn log-uniformly in the given ranges
    python -m end.scripts.sweep ... --paper            # paper scale (no CPU overlay); extra arguments are overrides

The paper's reporting (EnD's README and results.py): a random search of 20 or more (alpha, beta) drawn uniformly in
[0, 1], one seed each, then the mean ± std (population std, as its results.py) of the 3 runs with the best validation
accuracy:

    python -m end.scripts.sweep --paper --rho 0.997 --seeds 0 --alpha 0 1 --beta 0 1 --random 20 --top 3 --vanilla

Every finished run is appended to <out>/runs.jsonl; running the same command again skips those runs, so an
interrupted sweep continues where it stopped. Tables: <out>/results.md and <out>/results.csv.
Selection uses validation accuracy only, never the test sets.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from edflow import tables
from edflow.runs import add_log_root_argument
from end.scripts.runs import PAPER_UNBIASED, RunSpec, best_results, run_all

@dataclass(frozen=True)
class Setting:
    method: str
    rho: float
    alpha: float
    beta: float

    def overrides(self, seed: int) -> tuple[str, ...]:
        weights = () if self.method == "vanilla" else (f"Loss.alpha={self.alpha}", f"Loss.beta={self.beta}")
        return (f"Data.rho={self.rho}", f"seed={seed}", *weights)

    def name(self, seed: int) -> str:
        weights = "" if self.method == "vanilla" else f"_a{self.alpha:g}_b{self.beta:g}"
        return f"bmnist_{self.method}_rho{self.rho:g}{weights}_s{seed}"


def weight_pairs(alphas: list[float], betas: list[float], random: int | None, seed: int) -> list[tuple]:
    """The grid alphas x betas, or ``random`` pairs drawn log-uniformly between their smallest and largest value
    (linearly when a range includes 0)."""
    if not random:
        return list(itertools.product(alphas, betas))
    rng = np.random.default_rng(seed)

    def draw(values):
        low, high = min(values), max(values)
        if low > 0:
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        return float(rng.uniform(low, high))

    return [(round(draw(alphas), 4), round(draw(betas), 4)) for _ in range(random)]


def settings_of(args) -> list[Setting]:
    pairs = weight_pairs(args.alpha, args.beta, args.random, args.search_seed)
    settings = [Setting("vanilla", rho, 0.0, 0.0) for rho in args.rho] if args.vanilla else []
    return settings + [Setting("end", rho, a, b) for rho in args.rho for a, b in pairs]


def read_records(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def record_key(record: dict) -> tuple:
    return (record["method"], float(record["rho"]), float(record["alpha"]), float(record["beta"]),
            int(record["seed"]))


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value, so one-seed rows print "± 0.0")."""
    return tables.mean_std(values, ddof=1, single=0.0)


def summarise(records: list[dict]) -> list[dict]:
    """One row per (method, rho, alpha, beta) with mean/std over seeds; ``best`` marks, per (method, rho), the
    row with the highest mean validation accuracy."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(record_key(record)[:4], []).append(record)
    rows = []
    for (method, rho, alpha, beta), members in sorted(groups.items()):
        row = {"method": method, "rho": rho, "alpha": alpha, "beta": beta, "seeds": len(members)}
        for metric in ("validation", "biased", "unbiased"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std([100 * m[metric] for m in members])
        row["paper_unbiased"] = PAPER_UNBIASED.get(method, {}).get(round(rho, 3), math.nan)
        rows.append(row)
    for method, rho in {(r["method"], r["rho"]) for r in rows}:
        candidates = [r for r in rows if (r["method"], r["rho"]) == (method, rho)]
        best = max(candidates, key=lambda r: r["validation_mean"])
        for r in candidates:
            r["best"] = r is best
    return rows


def top_runs(records: list[dict], k: int) -> list[dict]:
    """Per (method, rho), the ``k`` runs with the best validation accuracy (any alpha, beta and seed) and the mean
    and population std (ddof=0, as EnD's results.py) of their accuracies, as the paper reports its table."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["method"], float(record["rho"])), []).append(record)
    rows = []
    for (method, rho), members in sorted(groups.items(), key=lambda item: (-item[0][1], item[0][0] != "vanilla")):
        best = sorted(members, key=lambda r: r["validation"], reverse=True)[:k]
        row = {"method": method, "rho": rho, "runs": len(members), "top": len(best),
               "settings": [(r["alpha"], r["beta"], r["seed"]) for r in best],
               "paper_unbiased": PAPER_UNBIASED.get(method, {}).get(round(rho, 3), math.nan)}
        for metric in ("validation", "biased", "unbiased"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = tables.mean_std([100 * r[metric] for r in best], ddof=0)
        rows.append(row)
    return rows


def top_markdown(rows: list[dict], k: int) -> str:
    lines = [f"Accuracy (%) at the best validation epoch, mean ± std of the {k} runs with the best validation "
             f"accuracy (the paper's reporting):", "",
             "| rho | method | runs | top (alpha, beta, seed) | validation | biased test | unbiased test | "
             "paper unbiased |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = "; ".join(f"({a:g}, {b:g}, {s})" for a, b, s in r["settings"])
        lines.append(f"| {r['rho']:g} | {'EnD' if r['method'] == 'end' else r['method']} | {r['runs']} | {settings} | "
                     f"{pm(r, 'validation')} | {pm(r, 'biased')} | {pm(r, 'unbiased')} | {r['paper_unbiased']:g} |")
    return "\n".join(lines) + "\n"


def pm(row: dict, metric: str) -> str:
    return tables.format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], digits=1)


def markdown(rows: list[dict]) -> str:
    header = ["| rho | method | alpha | beta | seeds | validation | biased test | unbiased test | paper unbiased |",
              "|---|---|---|---|---|---|---|---|---|"]

    def line(r):
        return (f"| {r['rho']:g} | {'EnD' if r['method'] == 'end' else r['method']} | {r['alpha']:g} | "
                f"{r['beta']:g} | {r['seeds']} | {pm(r, 'validation')} | {pm(r, 'biased')} | {pm(r, 'unbiased')} | "
                f"{r['paper_unbiased']:g} |")

    ordered = sorted(rows, key=lambda r: (-r["rho"], r["method"] != "vanilla", r["alpha"], r["beta"]))
    best = [line(r) for r in ordered if r["best"]]
    return "\n".join(["Accuracy (%) at the best validation epoch, mean ± std over seeds; for each rho and method the "
                      "(alpha, beta) with the best mean validation accuracy:", "", *header, *best, "",
                      "All settings:", "", *header, *(line(r) for r in ordered)]) + "\n"


def write_tables(records: list[dict], out: str, top: int | None = None) -> list[dict]:
    rows = summarise(records)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(rows))
        if top and records:
            f.write("\n" + top_markdown(top_runs(records, top), top))
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def check_same_sweep(out: str, scale: str, overrides: list[str]) -> None:
    """Runs of one --out folder must share scale and overrides, or their table would mix them."""
    path = os.path.join(out, "sweep.json")
    current = {"scale": scale, "overrides": list(overrides)}
    if os.path.isfile(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != current:
            raise SystemExit(f"{out} holds a sweep with {previous}, not {current}; pass another --out")
    else:
        with open(path, "w") as f:
            json.dump(current, f)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rho", type=float, nargs="+", default=[0.997])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.1])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.1])
    parser.add_argument("--random", type=int, default=None, metavar="N",
                        help="N random (alpha, beta) pairs within the ranges of --alpha and --beta instead of the grid")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the random search")
    parser.add_argument("--top", type=int, default=None, metavar="K",
                        help="also report the mean ± std of the K runs with the best validation accuracy (paper: 3)")
    parser.add_argument("--vanilla", action="store_true", help="also train the vanilla baseline for every rho")
    parser.add_argument("--paper", action="store_true", help="paper scale (default: the CPU-scale overlay)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    add_log_root_argument(parser, help="run folders go to <log-root>/end_sweep/")
    parser.add_argument("--out", default=None,
                        help="folder for runs.jsonl and the tables (default <log-root>/end_sweep/results; results/ "
                             "changes only when named here)")
    args, overrides = parser.parse_known_args(argv)
    args.out = args.out or os.path.join(args.log_root, "end_sweep", "results")
    if any(a < 0 for a in args.alpha + args.beta):
        parser.error("--alpha and --beta are weights and must be >= 0")
    os.makedirs(args.out, exist_ok=True)
    check_same_sweep(args.out, "paper" if args.paper else "cpu", overrides)
    records_path = os.path.join(args.out, "runs.jsonl")
    done = {record_key(r) for r in read_records(records_path)}
    settings = {}
    # rho by rho and seed by seed, so that a sweep stopped half-way has complete comparisons for the first rhos
    for rho, seed in itertools.product(args.rho, args.seeds):
        for setting in (s for s in settings_of(args) if s.rho == rho):
            if (setting.method, setting.rho, setting.alpha, setting.beta, seed) not in done:
                spec = RunSpec(setting.method, setting.name(seed), (*setting.overrides(seed), *overrides))
                settings[spec] = (setting, seed)
    print(f"{len(settings)} runs to train ({len(done)} already in {records_path})", flush=True)

    def record(spec: RunSpec, folder: str) -> None:
        setting, seed = settings[spec]
        result = best_results(folder)
        entry = {"method": setting.method, "rho": setting.rho, "alpha": setting.alpha, "beta": setting.beta,
                 "seed": seed, "epoch": result["epoch"], **{k: result[k] for k in ("validation", "biased", "unbiased")},
                 "run": os.path.basename(folder)}  # its name: a full path holds on one machine only
        with open(records_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        write_tables(read_records(records_path), args.out, args.top)

    run_all(list(settings), os.path.join(os.path.abspath(args.log_root), "end_sweep"), jobs=args.jobs,
            cpu=not args.paper, threads=args.threads, on_finish=record)
    records = read_records(records_path)
    rows = write_tables(records, args.out, args.top)
    print(markdown(rows))
    if args.top and records:
        print(top_markdown(top_runs(records, args.top), args.top))
    print(f"tables: {os.path.join(args.out, 'results.md')}, {os.path.join(args.out, 'results.csv')}")
    return rows


if __name__ == "__main__":
    main()
