"""fairgen's evaluations, as edflow callbacks ``fn(root, data_in, data_out, config) -> dict of floats``.

- :func:`attribute_accuracy`: per-attribute accuracy of the attribute classifier.
- :func:`calibration`: the density-ratio classifier's reliability curve (a PNG), expected calibration error, Brier
  score, accuracy, and its mean estimated ratio per bias group beside the true ratio of the two datasets.
- :func:`sample_fairness`: fairness discrepancy of generated samples (L2, L1, KL to uniform) and the predicted
  group shares.
- :func:`sample_grid` (from :mod:`fairkit.gan`): a PNG grid of generated samples. FID comes from :func:`fairkit.metrics.make_fid_callback`.
"""
from __future__ import annotations

import os

import numpy as np

from fairgen.data import DataOptions, classifier_attributes, data_options, num_groups
from fairkit.data.attribute_mnist import BIAS_SETTINGS
from fairkit.gan import sample_grid  # noqa: F401 (fairgen.callbacks.sample_grid stays importable)
from fairkit.metrics import fairness
from fairkit.metrics.callbacks import write_results

def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def reliability_curve(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """Equal-width bins of the predicted probability: mean prediction, observed positive rate and count per
    non-empty bin (sklearn's ``calibration_curve(strategy="uniform")`` plus counts), and the expected calibration
    error sum_b n_b / N |rate_b - mean_b|."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    if probabilities.shape != labels.shape or probabilities.ndim != 1:
        raise ValueError(f"expected two equally long 1-d arrays, got {probabilities.shape} and {labels.shape}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges[1:-1], probabilities, side="right"), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=probabilities, minlength=bins)
    positives = np.bincount(index, weights=labels, minlength=bins)
    filled = counts > 0
    mean_predicted, observed = sums[filled] / counts[filled], positives[filled] / counts[filled]
    ece = float(np.sum(counts[filled] / len(labels) * np.abs(observed - mean_predicted)))
    return {"mean_predicted": mean_predicted, "observed": observed, "counts": counts[filled], "ece": ece}


def plot_reliability(curve: dict, path: str, title: str = "density-ratio classifier") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    axis.plot(curve["mean_predicted"], curve["observed"], "o-", label=f"classifier (ECE {curve['ece']:.3f})")
    axis.set_xlabel("predicted p(reference | x)")
    axis.set_ylabel("fraction of reference examples")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def true_group_ratios(options: DataOptions) -> np.ndarray:
    """r per bias group when biased and reference data differ only in group shares: (1 / G) / share_g."""
    shares = np.asarray(BIAS_SETTINGS[options.setting], dtype=np.float64)
    return (1.0 / num_groups(options)) / shares


def calibration(root, data_in, data_out, config) -> dict:
    """Reliability curve (``reliability.png``), ECE, Brier score and accuracy of p(reference | x); the mean
    estimated r over the biased examples of each group beside the true ratio; the mean |log r^ - log r|."""
    labels = data_out.labels
    logits, reference = np.asarray(labels["logit"], np.float64), np.asarray(labels["reference"])
    probabilities = sigmoid(logits)
    curve = reliability_curve(probabilities, reference)
    plot_reliability(curve, os.path.join(root, "reliability.png"))
    results = {"ece": curve["ece"], "brier": float(np.mean((probabilities - reference) ** 2)),
               "accuracy": float(np.mean((probabilities >= 0.5) == reference))}
    true_ratios = true_group_ratios(data_options(config))
    biased = reference == 0
    groups = np.asarray(labels["group"])[biased]
    for g, true_ratio in enumerate(true_ratios):
        in_group = groups == g
        if in_group.any():
            results[f"ratio_group{g}"] = float(np.mean(np.exp(logits[biased][in_group])))
            results[f"ratio_group{g}_true"] = float(true_ratio)
    if biased.any():
        results["log_ratio_error"] = float(np.mean(np.abs(logits[biased] - np.log(true_ratios[groups]))))
    write_results(root, "calibration", results)
    return results


def attribute_accuracy(root, data_in, data_out, config) -> dict:
    """Accuracy of each predicted attribute (``accuracy_<name>``) and their mean (``accuracy``)."""
    names = classifier_attributes(config, data_options(config))
    predicted = np.asarray(data_out.labels["predicted"])
    target = np.asarray(data_out.labels["target"])
    per_attribute = (predicted == target).mean(0)
    results = {f"accuracy_{n}": float(a) for n, a in zip(names, per_attribute)}
    results["accuracy"] = float(per_attribute.mean())
    write_results(root, "attribute_accuracy", results)
    return results


def sample_fairness(root, data_in, data_out, config) -> dict:
    """Fairness discrepancy ||p^ - uniform||_2 (Choi et al.), its L1 form and KL(p^ || uniform) of the predicted
    bias group of generated samples, and the predicted share of every group (``share_group<g>``)."""
    options = data_options(config)
    groups = np.asarray(data_out.labels["sample_group"])
    n_groups = num_groups(options)
    shares = fairness.attribute_distribution(groups, n_groups)
    results = {"fairness_discrepancy": fairness.fairness_discrepancy(groups, n_groups, norm=2),
               "fairness_discrepancy_l1": fairness.fairness_discrepancy(groups, n_groups, norm=1),
               "kl_to_uniform": fairness.kl_to_uniform(groups, n_groups)}
    results.update({f"share_group{g}": float(s) for g, s in enumerate(shares)})
    write_results(root, "sample_fairness", results)
    return results
