"""Fairness discrepancy and red share per GAN iteration, from the committed records of the CPU-scale table.

    python -m fairgen.scripts.figures [--records results/fairgen] [--out results/fairgen]

reads ``trajectories.csv`` (every evaluation: perc, method, step, L2 discrepancy, red share; two decimals, as the
runs' report printed them) and ``final.csv`` (the last step, with the target of each method's training
distribution) and writes ``fairness_discrepancy.png`` and ``red_share.png``: one panel per reference-set size, one
line per method, its target dotted. Run by ``make figures``.
"""
from __future__ import annotations

import os

from fairkit.figures import figures_main, pyplot, read_records, save_png

RECORDS = os.path.join("results", "fairgen")
OUT = RECORDS
COLOURS = {"equal-weight baseline": "tab:gray", "conditional baseline": "tab:green",
           "importance-weighted (alpha 1)": "tab:red"}
QUANTITIES = {"l2_discrepancy": ("fairness discrepancy ||p - uniform||_2 (0 = fair)", "target_l2"),
              "red_share": ("share of red samples (0.5 = fair)", "target_red_share")}


def figure(trajectories: list[dict], final: list[dict], quantity: str, path: str) -> str:
    label, target_key = QUANTITIES[quantity]
    percs = sorted({r["perc"] for r in trajectories}, key=float, reverse=True)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(percs), figsize=(5.2 * len(percs), 3.8), sharey=True, squeeze=False)
    for ax, perc in zip(axes[0], percs):
        for method, colour in COLOURS.items():
            rows = sorted((r for r in trajectories if r["perc"] == perc and r["method"] == method),
                          key=lambda r: int(r["step"]))
            if not rows:
                continue
            ax.plot([int(r["step"]) for r in rows], [float(r[quantity]) for r in rows], "o-", ms=3, color=colour,
                    label=method)
            for r in final:
                if r["perc"] == perc and r["method"] == method:
                    ax.axhline(float(r[target_key]), color=colour, ls=":", lw=1.2)
        ax.set_title(f"reference set perc {perc} (dotted: each method's training target)", fontsize=9)
        ax.set_xlabel("GAN iteration")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(label)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Attribute MNIST 90_10 over colour, CPU scale, 2,000 EMA samples per evaluation", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def make_figures(*, records: str = RECORDS, out: str = OUT) -> list[str]:
    trajectories = read_records(os.path.join(records, "trajectories.csv"),
                                required=("perc", "method", "step", *QUANTITIES))
    final = read_records(os.path.join(records, "final.csv"),
                         required=("perc", "method", *(key for _, key in QUANTITIES.values())))
    unknown = sorted({r["method"] for r in trajectories} - set(COLOURS))
    if unknown:
        raise ValueError(f"trajectories.csv: methods without a colour in fairgen.scripts.figures.COLOURS: {unknown}")
    return [figure(trajectories, final, "l2_discrepancy", os.path.join(out, "fairness_discrepancy.png")),
            figure(trajectories, final, "red_share", os.path.join(out, "red_share.png"))]


def main(argv: list[str] | None = None) -> None:
    figures_main(make_figures, records=RECORDS, out=OUT, description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
