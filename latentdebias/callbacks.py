"""The paper's evaluation of an attribute classifier, from per-example scores (fairkit.metrics.fairness does the math).

- On the validation set: the F1-optimal threshold (labels generated images) and the calibrated threshold, the
  k-th largest validation score with k = the number of validation positives (the evaluation's threshold).
- On test sets, predictions at the calibrated threshold: AP, DEO = |TPR_g0 - TPR_g1|, BA (bias amplification) and
  KL between the two groups' score histograms, each with the median and a 95% interval over 500 bootstrap
  resamples (``<metric>_median``, ``_low``, ``_high``). ``Metrics/kl``: ``official`` (the default) is the official
  code's KL, the median of four KLs (positives and negatives, both directions; each histogram on its own range),
  pooled over the resamples (:func:`fairkit.metrics.fairness.per_class_score_kl`); ``shared_range`` is
  KL(g0 || g1) over all scores on one common range, this project's earlier KL, kept to compare with old results.
  Both: 50 bins, Gaussian smoothing sigma 1 (``kl_bins``, ``kl_sigma``).

Results are fractions (AP 0.663, not 66.3); :mod:`latentdebias.scripts.table` prints them in the paper's units.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from edflow.config import ConfigError, section
from fairkit.metrics import fairness

METRICS_DEFAULTS = {"bootstrap": 500, "seed": 0, "confidence": 0.95, "kl": "official", "kl_bins": 50,
                    "kl_sigma": 1.0}
FAIRNESS_METRICS = ("ap", "deo", "ba", "kl")
KL_KINDS = ("official", "shared_range")


def metrics_options(config: Mapping | None) -> dict:
    options = section(config or {}, "Metrics", METRICS_DEFAULTS)
    if options["kl"] not in KL_KINDS:
        raise ConfigError(f"Metrics/kl {options['kl']!r} is not one of {KL_KINDS}")
    return options


def validation_thresholds(scores, labels) -> dict:
    """The F1-optimal threshold and the calibrated (k-th largest score, k = positives) threshold."""
    return {"f1_threshold": fairness.f1_optimal_threshold(labels, scores),
            "calibrated_threshold": fairness.top_k_threshold(labels, scores)}


def predictions(scores, threshold: float) -> np.ndarray:
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int64)


def classification_metrics(scores, labels, threshold: float) -> dict:
    """AP of the scores, accuracy and F1 of the predictions at ``threshold``."""
    predicted = predictions(scores, threshold)
    return {"ap": undefined_as_nan(fairness.average_precision)(labels, scores),
            "accuracy": fairness.accuracy(labels, predicted), "f1": fairness.f1_score(labels, predicted)}


def undefined_as_nan(metric: Callable[..., float | np.ndarray]) -> Callable[..., float | np.ndarray]:
    """The metric, NaN where it is undefined (a resample without positives, or with one protected group only), so
    that the bootstrap leaves such resamples out."""
    def guarded(*arrays) -> float | np.ndarray:
        try:
            return metric(*arrays)
        except ValueError:
            return float("nan")
    return guarded


def fairness_metric_functions(threshold: float, options: Mapping) -> dict[str, Callable]:
    """name -> fn(scores, labels, groups) of the paper's four metrics, predictions at ``threshold``. The official
    KL gives its four values, whose median is the metric (pooled over the bootstrap's resamples)."""
    bins, sigma = int(options["kl_bins"]), float(options["kl_sigma"])
    kls = {"official": lambda s, y, g: fairness.per_class_score_kl(s, y, g, bins=bins, sigma=sigma, median=False),
           "shared_range": lambda s, y, g: fairness.score_histogram_kl(s, g, bins=bins, sigma=sigma)}
    return {
        "ap": lambda s, y, g: fairness.average_precision(y, s),
        "deo": lambda s, y, g: fairness.deo(y, predictions(s, threshold), g),
        "ba": lambda s, y, g: fairness.bias_amplification(y, predictions(s, threshold), g),
        "kl": kls[options["kl"]],
    }


def independent(labels, groups) -> bool:
    """Whether the target rate is the same in every group: then bias amplification has no direction to measure
    (every cell's sign is 0), as on a test set balanced over (target, group)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    rates = [labels[groups == g].mean() for g in np.unique(groups)]
    return bool(np.allclose(rates, labels.mean(), rtol=0, atol=1e-12))


def fairness_metrics(scores, labels, groups, threshold: float, options: Mapping | None = None) -> dict:
    """AP, DEO, BA, KL on all examples and, with ``bootstrap`` > 0 resamples, their median and interval. BA is NaN
    where target and group are independent (resamples would only give it the direction of their noise)."""
    options = metrics_options({"Metrics": options})
    arrays = (np.asarray(scores, dtype=np.float64), np.asarray(labels), np.asarray(groups))
    results = {}
    for name, metric in fairness_metric_functions(threshold, options).items():
        metric = undefined_as_nan(metric)
        if name == "ba" and independent(arrays[1], arrays[2]):
            metric = lambda *arrays: float("nan")  # noqa: E731
        results[name] = float(np.median(metric(*arrays)))
        if int(options["bootstrap"]) > 0:
            median, low, high = fairness.bootstrap(metric, *arrays, n=int(options["bootstrap"]),
                                                   seed=int(options["seed"]), confidence=float(options["confidence"]))
            results.update({f"{name}_median": median, f"{name}_low": low, f"{name}_high": high})
    return results
