"""``make demo``: vanilla against EnD on Biased MNIST (rho = 0.997) at CPU scale, then a table of their biased and
unbiased test accuracy at the best validation epoch of each.

Both runs go through the edflow runner with the configs configs/bmnist_{vanilla,end}.yaml + configs/cpu/..., side
by side with one thread each (on 2 cores that is faster than one after the other with two threads each).

    python -m end.scripts.demo                       # about 5 minutes on 2 idle cores
    python -m end.scripts.demo --jobs 1 num_epochs=2 # one after the other; extra arguments are config overrides
"""
from __future__ import annotations

import argparse
import os
import time

from edflow.runs import add_log_root_argument
from end.scripts.runs import PAPER_UNBIASED, RunSpec, best_results, result_images, run_all

LABELS = {"vanilla": "vanilla", "end": "EnD"}


def results_table(results: dict[str, dict], rho: float) -> str:
    """Markdown table of accuracies (%) at the best validation epoch, with the paper's unbiased accuracy."""
    lines = [f"Biased MNIST, rho = {rho}, CPU scale, accuracy (%) at the best validation epoch",
             "",
             "| method | best epoch | validation | biased test | unbiased test | paper unbiased |",
             "|---|---|---|---|---|---|"]
    for method, r in results.items():
        paper = PAPER_UNBIASED[method].get(round(rho, 3), float("nan"))
        lines.append(f"| {LABELS[method]} | {r['epoch']} | {100 * r['validation']:.1f} | {100 * r['biased']:.1f} | "
                     f"{100 * r['unbiased']:.1f} | {paper} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rho", type=float, default=0.997, help="bias strength of the training set")
    add_log_root_argument(parser, help="run folders go to <log-root>/end_demo/<timestamp>/")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each with one thread)")
    args, overrides = parser.parse_known_args(argv)
    root = os.path.join(os.path.abspath(args.log_root), "end_demo", time.strftime("%Y-%m-%dT%H-%M-%S"))
    specs = [RunSpec(method, f"bmnist_{method}_cpu", (f"Data.rho={args.rho}", *overrides)) for method in LABELS]
    print(f"Training vanilla and EnD on Biased MNIST (rho = {args.rho}) at CPU scale; logs in {root}", flush=True)
    start = time.time()
    folders = run_all(specs, root, jobs=args.jobs)
    results = {spec.method: best_results(folders[spec.name]) for spec in specs}
    table = results_table(results, args.rho)
    with open(os.path.join(root, "results.md"), "w") as f:
        f.write(table + "\n")
    print(f"\n{table}\n\n(both runs took {time.time() - start:.0f} s)\nrun folders:")
    for spec in specs:
        print(f"  {LABELS[spec.method]}: {folders[spec.name]}")
    print("images (per-colour accuracy at the best epoch, training inputs):")
    for spec in specs:
        for path in result_images(folders[spec.name], results[spec.method]["step"]):
            print(f"  {path}")
    print(f"table: {os.path.join(root, 'results.md')}")
    return results


if __name__ == "__main__":
    main()
