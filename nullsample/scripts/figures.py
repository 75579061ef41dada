"""Downstream accuracy against HGR for every measured null-sampling variant, from the committed records.

    python -m nullsample.scripts.figures [--records results/nullsample/variants.csv] [--out results/nullsample]

writes ``accuracy_vs_hgr.png``: one point per row of the records (colour: representation, marker: sigma), the
paper's numbers as stars and the aim (accuracy >= 0.8 with HGR <= 0.2) shaded. Run by ``make figures``.
"""
from __future__ import annotations

import os

from fairkit.figures import figures_main, pyplot, read_records, save_png

RECORDS = os.path.join("results", "nullsample", "variants.csv")
OUT = os.path.join("results", "nullsample")
# Paper, coloured MNIST: (model, sigma) -> (accuracy, HGR) after 26k flow steps and 40 classifier epochs.
PAPER = {("cflow", 0.0): (0.953, 0.069), ("cvae", 0.0): (0.991, 0.058), ("baseline", 0.0): (0.108, 1.0),
         ("cflow", 0.05): (0.954, 0.085), ("cvae", 0.05): (0.960, 0.094), ("baseline", 0.05): (0.818, 0.329)}
AIM_ACCURACY, AIM_HGR = 0.8, 0.2
COLOURS = {"baseline": "tab:gray", "cflow": "tab:blue", "cvae": "tab:orange"}
NAMES = {"baseline": "CNN on raw images", "cflow": "cFlow null-samples", "cvae": "cVAE null-samples"}
MARKERS = {0.0: "o", 0.05: "^"}
PAPER_MARKERS = {0.0: "*", 0.05: "P"}


def figure(rows: list[dict], path: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5.2))
    ax.add_patch(plt.Rectangle((0, AIM_ACCURACY), AIM_HGR, 1.05 - AIM_ACCURACY, color="tab:green", alpha=0.12,
                               lw=0, label=f"aim: accuracy >= {AIM_ACCURACY}, HGR <= {AIM_HGR}"))
    for model, name in NAMES.items():
        for sigma, marker in MARKERS.items():
            picked = [r for r in rows if r["model"] == model and float(r["sigma"]) == sigma]
            if picked:
                ax.scatter([float(r["hgr"]) for r in picked], [float(r["accuracy"]) for r in picked], s=28,
                           marker=marker, color=COLOURS[model], alpha=0.75, edgecolors="none",
                           label=f"{name}, sigma {sigma:g} (CPU scale)")
    for (model, sigma), (accuracy, hgr) in PAPER.items():
        ax.scatter([hgr], [accuracy], s=120, marker=PAPER_MARKERS[sigma], color=COLOURS[model], edgecolors="black",
                   linewidths=0.7)
    for sigma, marker in PAPER_MARKERS.items():  # legend entries only: the colour says which representation
        ax.scatter([], [], s=120, marker=marker, color="white", edgecolors="black", label=f"paper, sigma {sigma:g}")
    for row in (r for r in rows if r.get("pipeline") == "nifr"):  # runs on nifr's data pipeline stand out
        ax.scatter([float(row["hgr"])], [float(row["accuracy"])], s=70, marker="s", facecolors="none",
                   edgecolors="tab:red", linewidths=1.2)
        label = f"nifr's data ({row['steps']} steps)" if row["steps"] else "nifr's data"
        left = float(row["hgr"]) < 0.3  # near the left edge the label goes to the right of its point
        ax.annotate(label, (float(row["hgr"]), float(row["accuracy"])), textcoords="offset points",
                    xytext=(8, -10) if left else (-6, -12), ha="left" if left else "right", fontsize=7,
                    color="tab:red")
    best = max((r for r in rows if r["model"] == "cflow"), key=lambda r: float(r["accuracy"]))
    ax.annotate(f"best cFlow ({best['steps']} steps)", (float(best["hgr"]), float(best["accuracy"])),
                textcoords="offset points", xytext=(-6, 8), ha="right", fontsize=7)
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("HGR of the downstream prediction and s (lower is fairer)")
    ax.set_ylabel("downstream test accuracy")
    ax.set_title(f"Coloured MNIST, CPU scale: {len(rows)} measured variants; the paper's points have black edges",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return save_png(fig, path)


def make_figures(*, records: str = RECORDS, out: str = OUT) -> list[str]:
    rows = read_records(records, required=("model", "sigma", "accuracy", "hgr", "steps"))
    return [figure(rows, os.path.join(out, "accuracy_vs_hgr.png"))]


def main(argv: list[str] | None = None) -> None:
    figures_main(make_figures, records=RECORDS, out=OUT, description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
