"""Baseline against augmented classifier, seed by seed, from the committed records of the CPU-scale table.

    python -m latentdebias.scripts.figures [--records results/latentdebias] [--out results/latentdebias]

reads ``seeds_cpu.csv`` (one row per training seed, split and metric: the bootstrap medians, in %, of the baseline
and the augmented target classifier, as ``python -m latentdebias.scripts.table --seeds 0 1 2 3 4 --records <csv>``
writes them) and writes ``deo_pairs.png``: one panel per (split, metric), a line from baseline to augmented for every seed and
the mean over seeds as a bar. Run by ``make figures``.
"""
from __future__ import annotations

import os

from fairkit.figures import figures_main, pyplot, read_records, save_png

RECORDS = os.path.join("results", "latentdebias")
OUT = RECORDS
LABELS = {("test", "deo"): "DEO on the balanced test split (%)",
          ("test_biased", "ba"): "bias amplification on the biased test split (%)"}
MODELS = ("baseline", "augmented")
SEED_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def figure(rows: list[dict], path: str) -> str:
    targets = sorted({r.get("target", "") for r in rows})
    if len(targets) > 1:
        raise ValueError(f"seeds_cpu.csv: one target attribute per figure, the records hold {targets}")
    panels = [key for key in LABELS if any((r["split"], r["metric"]) == key for r in rows)]
    if not panels:
        raise ValueError(f"seeds_cpu.csv: no rows for the figure's panels {sorted(LABELS)} (split, metric)")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.9), squeeze=False)
    for ax, key in zip(axes[0], panels):
        picked = sorted((r for r in rows if (r["split"], r["metric"]) == key), key=lambda r: int(r["seed"]))
        values = [[float(r[m]) for m in MODELS] for r in picked]
        means = [sum(v[i] for v in values) / len(values) for i in range(len(MODELS))]
        ax.bar(range(len(MODELS)), means, width=0.5, color="tab:gray", alpha=0.3,
               label="mean over seeds")
        for row, (before, after) in zip(picked, values):
            ax.plot([0, 1], [before, after], marker="o", color=SEED_COLOURS[int(row["seed"]) % len(SEED_COLOURS)], ms=4,
                    lw=1.2, ls="--" if after > before else "-", label=f"seed {row['seed']}")
        ax.set_xticks(range(len(MODELS)), ["baseline", "augmented\n(real + G(z) + G(z'))"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylabel(LABELS[key])
        lower = sum(after <= before for before, after in values)
        ax.set_title(f"lower or equal for {lower} of {len(values)} seeds", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Latent de-biasing, Attribute MNIST at CPU scale: each line one training seed (dashed: worse)",
                 fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def make_figures(*, records: str = RECORDS, out: str = OUT) -> list[str]:
    rows = read_records(os.path.join(records, "seeds_cpu.csv"), required=("seed", "split", "metric", *MODELS))
    return [figure(rows, os.path.join(out, "deo_pairs.png"))]


def main(argv: list[str] | None = None) -> None:
    figures_main(make_figures, records=RECORDS, out=OUT, description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
