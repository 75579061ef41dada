"""Evaluation after every epoch: accuracy, accuracy per bias colour (with a bar plot), and accuracy on the
bias-aligned (colour = digit) and bias-conflicting examples."""
from __future__ import annotations

import os

import numpy as np

from fairkit.metrics.fairness import accuracy, accuracy_per_group

PLOT_NAME = "per_color_accuracy.png"


def bias_accuracy(root: str, data_in, data_out, config) -> dict[str, float]:
    """Reads the iterator's per-example outputs ``pred``, ``target`` and ``bias`` from ``data_out.labels``."""
    labels = data_out.labels
    missing = [key for key in ("pred", "target", "bias") if key not in labels]
    if missing:
        raise KeyError(f"bias_accuracy needs eval_op outputs {missing}; found {sorted(labels)}")
    pred, target, bias = (np.asarray(labels[key]) for key in ("pred", "target", "bias"))
    per_colour = accuracy_per_group(target, pred, bias)
    results = {"accuracy": accuracy(target, pred)}
    results.update({f"accuracy_color_{colour}": value for colour, value in per_colour.items()})
    aligned = target == bias
    for name, selected in (("aligned", aligned), ("conflicting", ~aligned)):
        if selected.any():
            results[f"accuracy_{name}"] = accuracy(target[selected], pred[selected])
    plot_per_colour_accuracy(per_colour, getattr(data_in, "palette", None), os.path.join(root, PLOT_NAME),
                             title=f"{getattr(data_in, 'split', '')} accuracy {results['accuracy']:.3f}")
    return results


def plot_per_colour_accuracy(per_colour: dict, palette, path: str, title: str = "") -> str:
    """Bar plot of accuracy per colour, each bar in its colour (grey without a palette)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    colours = sorted(per_colour)
    faces = [np.asarray(palette[c]) / 255 if palette is not None else (0.5, 0.5, 0.5) for c in colours]
    figure = Figure(figsize=(5, 3))
    axes = figure.subplots()
    axes.bar([str(c) for c in colours], [per_colour[c] for c in colours], color=faces, edgecolor="black")
    axes.set_ylim(0, 1)
    axes.set_xlabel("background colour (bias label)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=80)
    return path
