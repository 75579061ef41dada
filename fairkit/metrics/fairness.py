"""Fairness and classification metrics: numpy arrays in, floats (or {group: float} dicts) out.

Conventions: ``y_true`` true labels, ``y_pred`` predicted labels, ``scores`` probabilities of class 1, ``group``
the protected attribute. Binary metrics expect labels in {0, 1}; "difference" metrics are the largest minus the
smallest per-group value (fairlearn's ``between_groups``), which for two groups is the absolute difference.
A rate that is undefined in some group (no positives there, say) is NaN.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per example (shape (N,) or (N, 1)), got shape {array.shape}")
    return array


def _check_lengths(**arrays: np.ndarray):
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays must have one entry per example, got lengths {lengths}")
    if not next(iter(lengths.values())):
        raise ValueError(f"metrics need at least one example, got lengths {lengths}")


def _binary(name: str, values) -> np.ndarray:
    array = _as_1d(name, values)
    if not np.isin(array, (0, 1)).all():
        found = np.unique(array)[:10]
        raise ValueError(f"{name} must be binary labels in {{0, 1}}, found values {found.tolist()}")
    return array.astype(np.int64)


def _python_scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _per_group(values: np.ndarray, group: np.ndarray, statistic: Callable[[np.ndarray], float]) -> dict:
    return {_python_scalar(g): float(statistic(values[group == g])) for g in np.unique(group)}


def _rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


def _spread(per_group: dict) -> float:
    values = np.array(list(per_group.values()), dtype=np.float64)
    return float(values.max() - values.min())


def _two_groups(group: np.ndarray) -> np.ndarray:
    groups = np.unique(group)
    if len(groups) != 2:
        raise ValueError(f"this metric compares exactly two protected groups, found {groups.tolist()}")
    return groups


# --- accuracy and per-group rates ---------------------------------------------------------------------------------

def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _as_1d("y_true", y_true), _as_1d("y_pred", y_pred)
    _check_lengths(y_true=y_true, y_pred=y_pred)
    return float((y_true == y_pred).mean())


def accuracy_per_group(y_true, y_pred, group) -> dict:
    y_true, y_pred, group = _as_1d("y_true", y_true), _as_1d("y_pred", y_pred), _as_1d("group", group)
    _check_lengths(y_true=y_true, y_pred=y_pred, group=group)
    return _per_group(y_true == y_pred, group, _rate)


def positive_rate_per_group(y_pred, group) -> dict:
    """P(y^ = 1 | s) for every value s of the protected attribute."""
    y_pred, group = _binary("y_pred", y_pred), _as_1d("group", group)
    _check_lengths(y_pred=y_pred, group=group)
    return _per_group(y_pred == 1, group, _rate)


def true_positive_rate_per_group(y_true, y_pred, group) -> dict:
    y_true, y_pred, group = _binary("y_true", y_true), _binary("y_pred", y_pred), _as_1d("group", group)
    _check_lengths(y_true=y_true, y_pred=y_pred, group=group)
    positives = y_true == 1
    return {_python_scalar(g): _rate(y_pred[positives & (group == g)] == 1) for g in np.unique(group)}


def true_negative_rate_per_group(y_true, y_pred, group) -> dict:
    y_true, y_pred, group = _binary("y_true", y_true), _binary("y_pred", y_pred), _as_1d("group", group)
    return true_positive_rate_per_group(1 - y_true, 1 - y_pred, group)


def demographic_parity_difference(y_pred, group) -> float:
    return _spread(positive_rate_per_group(y_pred, group))


def tpr_difference(y_true, y_pred, group) -> float:
    return _spread(true_positive_rate_per_group(y_true, y_pred, group))


def tnr_difference(y_true, y_pred, group) -> float:
    return _spread(true_negative_rate_per_group(y_true, y_pred, group))


def equalized_odds_difference(y_true, y_pred, group) -> float:
    """max(TPR difference, FPR difference), as fairlearn defines it (the FPR difference equals the TNR one)."""
    return max(tpr_difference(y_true, y_pred, group), tnr_difference(y_true, y_pred, group))


def deo(y_true, y_pred, group) -> float:
    """Difference in equal opportunity |TPR_g0 - TPR_g1| for a binary protected attribute."""
    _two_groups(_as_1d("group", group))
    return tpr_difference(y_true, y_pred, group)


# --- bias amplification, score histograms, dependence -----------------------------------------------------------

def bias_amplification(y_true, y_pred, group) -> float:
    """Mean over cells (t, a) of sign(P(t|a) - P(t)) * (P(t^ = t | a) - P(t | a)).

    Positive when the predictions exaggerate the correlations between target and protected attribute present in
    the data; cells where t and a are uncorrelated (sign 0) contribute 0.
    """
    y_true, y_pred, group = _as_1d("y_true", y_true), _as_1d("y_pred", y_pred), _as_1d("group", group)
    _check_lengths(y_true=y_true, y_pred=y_pred, group=group)
    cells = []
    for t in np.unique(np.concatenate([y_true, y_pred])):
        p_t = (y_true == t).mean()
        for a in np.unique(group):
            in_group = group == a
            p_t_given_a = (y_true[in_group] == t).mean()
            p_pred_given_a = (y_pred[in_group] == t).mean()
            cells.append(np.sign(p_t_given_a - p_t) * (p_pred_given_a - p_t_given_a))
    return float(np.mean(cells))


def smoothed_histograms(scores, group, bins: int = 50, sigma: float = 1.0, eps: float = 1e-6) -> dict:
    """Per-group score histograms on one common range, Gaussian-smoothed (sigma in bins; 0: none), +eps, normalised."""
    scores, group = _as_1d("scores", scores).astype(np.float64), _as_1d("group", group)
    _check_lengths(scores=scores, group=group)
    edges = np.histogram_bin_edges(scores, bins=bins)
    histograms = {}
    for g in np.unique(group):
        counts = np.histogram(scores[group == g], bins=edges)[0].astype(np.float64)
        smooth = (gaussian_filter1d(counts, sigma) if sigma > 0 else counts) + eps
        histograms[_python_scalar(g)] = smooth / smooth.sum()
    return histograms


def kl_divergence(p, q) -> float:
    """sum p log(p / q) in nats over the entries where p is not 0 (a NaN in p, an undefined histogram, gives NaN)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    present = p != 0
    return float(np.sum(p[present] * np.log(p[present] / q[present])))


def score_histogram_kl(scores, group, bins: int = 50, sigma: float = 1.0, symmetric: bool = False) -> float:
    """KL(P(score | g0) || P(score | g1)) of the smoothed histograms, groups in sorted order.

    ``symmetric=True`` gives the mean of both directions.
    """
    g0, g1 = _two_groups(_as_1d("group", group))
    histograms = smoothed_histograms(scores, group, bins, sigma)
    p, q = histograms[_python_scalar(g0)], histograms[_python_scalar(g1)]
    return (kl_divergence(p, q) + kl_divergence(q, p)) / 2 if symmetric else kl_divergence(p, q)


def per_class_score_kl(scores, labels, group, *, bins: int = 50, sigma: float = 1.0, eps: float = 1e-6,
                       median: bool = True):
    """The score KL of princetonvisualai/gan-debiasing (``utils.bootstrap_kl`` and ``smoothed_hist_kl_distance``).

    Among the positives (label 1) and among the negatives (label 0) separately, the two groups' scores (groups in
    sorted order) are each put in a histogram of ``bins`` bins over that group's own min-max range
    (``np.histogram(scores, bins)``), the counts Gaussian-smoothed with ``sigma`` in bins (as the official
    ``scipy.ndimage.gaussian_filter``: mode "reflect", kernel cut at 4 sigma; 0: none) and truncated towards zero,
    because the official code smooths an integer array, which keeps its dtype; then normalised to sum 1, and ``eps``
    added to every bin (not normalised again). KL(p || q) = sum p log(p / q) in nats, in both directions.
    Returns the median of the four KLs (positives g0||g1, g1||g0, negatives g0||g1, g1||g0), or with
    ``median=False`` the four values in that order: the official bootstrap takes the median of all resamples'
    four values pooled, which :func:`bootstrap` does with such a metric. The official code also computes the KL
    over all scores, but reports only this median. A histogram whose smoothed counts all truncate to 0 (a handful
    of scattered scores) makes both KLs of its class NaN, and the median NaN, as in the official code.
    """
    scores = _as_1d("scores", scores).astype(np.float64)
    labels, group = _binary("labels", labels), _as_1d("group", group)
    _check_lengths(scores=scores, labels=labels, group=group)
    groups = _two_groups(group)

    def histogram(values: np.ndarray) -> np.ndarray:
        counts = np.histogram(values, bins=bins)[0].astype(np.float64)
        smooth = np.trunc(gaussian_filter1d(counts, sigma)) if sigma > 0 else counts
        with np.errstate(invalid="ignore"):
            return smooth / smooth.sum() + eps

    kls = []
    for label in (1, 0):
        cells = []
        for g in groups:
            values = scores[(labels == label) & (group == g)]
            if not len(values):
                raise ValueError(f"per_class_score_kl needs scores of both groups among positives and negatives; "
                                 f"group {_python_scalar(g)} has no example with label {label}")
            cells.append(histogram(values))
        p, q = cells
        kls += [kl_divergence(p, q), kl_divergence(q, p)]
    return float(np.median(kls)) if median else np.array(kls)


def hgr_correlation(a, b) -> float:
    """Hirschfeld-Gebelein-Renyi maximal correlation of two discrete variables.

    The second largest singular value of Q = P(a, b) / sqrt(P(a) P(b)) (the largest is always 1):
    0 for independent variables, 1 when one determines the other.
    """
    a, b = _as_1d("a", a), _as_1d("b", b)
    _check_lengths(a=a, b=b)
    a_values, a_index = np.unique(a, return_inverse=True)
    b_values, b_index = np.unique(b, return_inverse=True)
    joint = np.zeros((len(a_values), len(b_values)))
    np.add.at(joint, (a_index, b_index), 1.0)
    joint /= joint.sum()
    q = joint / np.sqrt(np.outer(joint.sum(1), joint.sum(0)))
    singular_values = np.linalg.svd(q, compute_uv=False)
    return float(min(singular_values[1], 1.0)) if len(singular_values) > 1 else 0.0


# --- distribution of predicted attributes (generative models) -----------------------------------------------------

def attribute_distribution(pred_attr, num_classes: int) -> np.ndarray:
    pred_attr = _as_1d("pred_attr", pred_attr)
    if len(pred_attr) == 0:
        raise ValueError("need at least one predicted attribute label")
    if not np.issubdtype(pred_attr.dtype, np.integer) and not np.all(pred_attr == np.round(pred_attr)):
        raise ValueError("pred_attr must hold integer class labels (argmax of the attribute classifier)")
    pred_attr = pred_attr.astype(np.int64)
    if pred_attr.min() < 0 or pred_attr.max() >= num_classes:
        raise ValueError(f"pred_attr values must lie in [0, {num_classes}), found {pred_attr.min()}..{pred_attr.max()}")
    return np.bincount(pred_attr, minlength=num_classes) / len(pred_attr)


def fairness_discrepancy(pred_attr, num_classes: int, norm: int = 2) -> float:
    """|| p^ - uniform ||_norm of the predicted attribute distribution (norm 2 as in Choi et al.; 1 for L1)."""
    p = attribute_distribution(pred_attr, num_classes)
    return float(np.linalg.norm(p - 1.0 / num_classes, ord=norm))


def kl_to_uniform(pred_attr, num_classes: int) -> float:
    return kl_divergence(attribute_distribution(pred_attr, num_classes), np.full(num_classes, 1.0 / num_classes))


# --- scores and thresholds --------------------------------------------------------------------------------------

def _ranked_counts(y_true, scores):
    """Cumulative true and false positives at every distinct score, thresholds from high to low."""
    y_true, scores = _binary("y_true", y_true), _as_1d("scores", scores).astype(np.float64)
    _check_lengths(y_true=y_true, scores=scores)
    if not y_true.any():
        raise ValueError("y_true has no positive examples; precision/recall-based metrics are undefined")
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(y_true)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    return scores[last_of_each_score], true_positives, false_positives


def average_precision(y_true, scores) -> float:
    """sum_n (R_n - R_{n-1}) P_n over distinct score thresholds: scikit-learn's average_precision_score."""
    _, true_positives, false_positives = _ranked_counts(y_true, scores)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_score(y_true, y_pred) -> float:
    y_true, y_pred = _binary("y_true", y_true), _binary("y_pred", y_pred)
    _check_lengths(y_true=y_true, y_pred=y_pred)
    true_positives = np.sum((y_true == 1) & (y_pred == 1))
    denominator = y_true.sum() + y_pred.sum()
    return float(2 * true_positives / denominator) if denominator else 0.0


def f1_optimal_threshold(y_true, scores) -> float:
    """The score threshold t (predict 1 when score >= t) with the highest F1 on these (validation) scores."""
    thresholds, true_positives, false_positives = _ranked_counts(y_true, scores)
    f1 = 2 * true_positives / (true_positives + false_positives + true_positives[-1])
    return float(thresholds[np.argmax(f1)])


def top_k_threshold(y_true, scores) -> float:
    """The k-th largest (validation) score, k = number of positives: predicting score >= t marks k examples 1."""
    y_true, scores = _binary("y_true", y_true), _as_1d("scores", scores).astype(np.float64)
    _check_lengths(y_true=y_true, scores=scores)
    k = int(y_true.sum())
    if k == 0:
        raise ValueError("y_true has no positive examples; the k-th largest score threshold needs k >= 1")
    return float(np.sort(scores)[::-1][k - 1])


# --- uncertainty ------------------------------------------------------------------------------------------------

def bootstrap(metric_fn: Callable[..., float | np.ndarray], *arrays, n: int = 500, seed: int = 0,
              confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high) of ``metric_fn`` over ``n`` resamples with replacement of the examples.

    All arrays are resampled with the same indices. A metric that returns several values per resample has all
    resamples' values pooled (as the official KL of :func:`per_class_score_kl`). Undefined values (NaN, or a
    ValueError such as a protected group missing from the resample) are left out; if every resample fails, the
    error is raised.
    """
    arrays = [np.asarray(array) for array in arrays]
    if not arrays:
        raise ValueError("bootstrap needs at least one array to resample")
    _check_lengths(**{f"array{i}": array for i, array in enumerate(arrays)})
    rng = np.random.default_rng(seed)
    size = len(arrays[0])
    values, error = [], None
    for _ in range(n):
        indices = rng.integers(0, size, size)
        try:
            values.append(np.ravel(np.asarray(metric_fn(*(array[indices] for array in arrays)), dtype=np.float64)))
        except ValueError as caught:
            error = caught
    values = np.concatenate(values) if values else np.full(1, np.nan)
    if np.isnan(values).all():
        if error is not None:
            raise error
        return float("nan"), float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, median, high = np.nanpercentile(values, [tail, 50, 100 - tail])
    return float(median), float(low), float(high)
