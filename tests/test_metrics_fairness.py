"""Fairness metrics against fairlearn and scikit-learn on the same inputs, and hand-computed tiny cases."""
import math

import numpy as np
import pytest
import sklearn.metrics
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, equalized_odds_difference,
                               selection_rate, true_negative_rate, true_positive_rate)
from scipy.ndimage import gaussian_filter1d
from scipy.stats import entropy

from fairkit.metrics import fairness


def random_binary_problem(n=400, groups=2, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    y_true = (rng.random(n) < 0.3 + 0.2 * (group == 1)).astype(int)
    scores = np.clip(0.35 * y_true + 0.15 * (group == 0) + rng.random(n) * 0.6, 0, 1)
    y_pred = (scores > 0.5).astype(int)
    return y_true, y_pred, scores, group


@pytest.mark.parametrize("groups", [2, 3])
def test_group_metrics_match_fairlearn(groups):
    y_true, y_pred, _, group = random_binary_problem(groups=groups, seed=groups)
    frame = MetricFrame(metrics={"tpr": true_positive_rate, "tnr": true_negative_rate, "rate": selection_rate,
                                 "acc": sklearn.metrics.accuracy_score},
                        y_true=y_true, y_pred=y_pred, sensitive_features=group)
    by_group = frame.by_group
    assert fairness.true_positive_rate_per_group(y_true, y_pred, group) == pytest.approx(by_group["tpr"].to_dict())
    assert fairness.true_negative_rate_per_group(y_true, y_pred, group) == pytest.approx(by_group["tnr"].to_dict())
    assert fairness.positive_rate_per_group(y_pred, group) == pytest.approx(by_group["rate"].to_dict())
    assert fairness.accuracy_per_group(y_true, y_pred, group) == pytest.approx(by_group["acc"].to_dict())
    difference = frame.difference()
    assert fairness.tpr_difference(y_true, y_pred, group) == pytest.approx(difference["tpr"])
    assert fairness.tnr_difference(y_true, y_pred, group) == pytest.approx(difference["tnr"])
    assert fairness.demographic_parity_difference(y_pred, group) == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=group))
    assert fairness.equalized_odds_difference(y_true, y_pred, group) == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=group))
    assert fairness.demographic_parity_difference(y_pred, group) > 0.05  # the problem is biased


def test_deo_is_the_absolute_tpr_gap_of_two_groups():
    y_true, y_pred, _, group = random_binary_problem(seed=5)
    tpr = true_positive_rate
    expected = abs(tpr(y_true[group == 0], y_pred[group == 0]) - tpr(y_true[group == 1], y_pred[group == 1]))
    assert fairness.deo(y_true, y_pred, group) == pytest.approx(expected)
    with pytest.raises(ValueError, match="exactly two protected groups"):
        fairness.deo(y_true, y_pred, np.arange(len(group)) % 3)


def test_classification_metrics_match_scikit_learn():
    y_true, y_pred, scores, _ = random_binary_problem(seed=1)
    assert fairness.accuracy(y_true, y_pred) == pytest.approx(sklearn.metrics.accuracy_score(y_true, y_pred))
    assert fairness.f1_score(y_true, y_pred) == pytest.approx(sklearn.metrics.f1_score(y_true, y_pred))
    for tied_scores in (scores, np.round(scores, 1)):  # ties between scores must be handled as sklearn does
        assert fairness.average_precision(y_true, tied_scores) == pytest.approx(
            sklearn.metrics.average_precision_score(y_true, tied_scores), rel=1e-12)


def test_f1_optimal_threshold_maximises_scikit_learns_f1():
    y_true, _, scores, _ = random_binary_problem(seed=2)
    scores = np.round(scores, 2)
    threshold = fairness.f1_optimal_threshold(y_true, scores)
    best = max(sklearn.metrics.f1_score(y_true, scores >= t) for t in np.unique(scores))
    assert sklearn.metrics.f1_score(y_true, scores >= threshold) == pytest.approx(best)
    assert threshold in scores


def test_top_k_threshold_marks_as_many_positives_as_there_are():
    y_true = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.1, 0.2])
    assert fairness.top_k_threshold(y_true, scores) == 0.6  # 3rd largest of .9 .8 .6 .3 .2 .1
    assert (scores >= fairness.top_k_threshold(y_true, scores)).sum() == y_true.sum()
    with pytest.raises(ValueError, match="no positive"):
        fairness.top_k_threshold(np.zeros(3), scores[:3])


def test_bias_amplification_hand_computed():
    # a = 1 goes with t = 1 in the data (P(t=1|a=1) = 3/4, P(t=1) = 1/2); the predictions exaggerate it.
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_true = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # cells (t, a): (0,0): +(1 - 3/4); (0,1): -(0 - 1/4); (1,0): -(0 - 1/4); (1,1): +(1 - 3/4) -> mean 1/4
    assert fairness.bias_amplification(y_true, y_pred, group) == pytest.approx(0.25)
    assert fairness.bias_amplification(y_true, y_true, group) == 0.0
    # predictions that remove the correlation: P(t^=1|a) = 1/2 in both groups
    unbiased = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    assert fairness.bias_amplification(y_true, unbiased, group) == pytest.approx(-0.25)
    # t independent of a: every sign is 0
    assert fairness.bias_amplification(np.array([0, 1, 0, 1]), np.array([1, 1, 1, 1]), np.array([0, 0, 1, 1])) == 0


def test_score_kl_hand_computed_and_against_scipy():
    scores = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # two bins, no smoothing: (3/4, 1/4) against (1/4, 3/4)
    assert fairness.score_histogram_kl(scores, group, bins=2, sigma=0) == pytest.approx(0.5 * math.log(3), rel=1e-5)

    rng = np.random.default_rng(3)
    scores, group = np.r_[rng.beta(2, 5, 300), rng.beta(3, 3, 200)], np.r_[np.zeros(300), np.ones(200)]
    edges = np.linspace(scores.min(), scores.max(), 51)
    p, q = [gaussian_filter1d(np.histogram(scores[group == g], edges)[0].astype(float), 1) + 1e-6 for g in (0, 1)]
    assert fairness.score_histogram_kl(scores, group) == pytest.approx(entropy(p, q), rel=1e-10)
    assert fairness.score_histogram_kl(scores, group, symmetric=True) == pytest.approx(
        (entropy(p, q) + entropy(q, p)) / 2, rel=1e-10)
    same = np.r_[scores[:250], scores[:250]]
    assert fairness.score_histogram_kl(same, np.r_[np.zeros(250), np.ones(250)]) == pytest.approx(0, abs=1e-12)


def test_per_class_score_kl_hand_computed_against_scipy():
    """Two bins on each histogram's own range, no smoothing. Positives: g0 (0.1, 0.2, 0.9) -> (2, 1) on
    [0.1, 0.9]; g1 (0.5, 0.6, 0.7, 0.8) -> (2, 2) on [0.5, 0.8] (on a shared range all four would share a bin).
    Negatives: g0 (0.0, 0.1, 0.3, 0.4) -> (2, 2); g1 (0.2, 0.25, 0.3, 0.5) -> (3, 1)."""
    scores = np.array([0.1, 0.2, 0.9, 0.5, 0.6, 0.7, 0.8, 0.0, 0.1, 0.3, 0.4, 0.2, 0.25, 0.3, 0.5])
    labels = np.r_[np.ones(7, int), np.zeros(8, int)]
    group = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1])
    pos0, pos1, neg0, neg1 = [2, 1], [2, 2], [2, 2], [3, 1]
    expected = [entropy(pos0, pos1), entropy(pos1, pos0), entropy(neg0, neg1), entropy(neg1, neg0)]
    four = fairness.per_class_score_kl(scores, labels, group, bins=2, sigma=0, median=False)
    np.testing.assert_allclose(four, expected, rtol=1e-4)  # the official +1e-6 per bin shifts them slightly
    assert fairness.per_class_score_kl(scores, labels, group, bins=2, sigma=0) == pytest.approx(
        (entropy(pos1, pos0) + entropy(neg1, neg0)) / 2, rel=1e-4)  # the median of four: mean of the middle two


def test_per_class_score_kl_smoothed_against_scipy():
    rng = np.random.default_rng(5)
    scores = np.r_[rng.beta(5, 2, 300), rng.beta(2, 5, 400), 0.8 * rng.beta(4, 2, 200), rng.beta(2, 3, 250)]
    labels = np.r_[np.ones(300), np.zeros(400), np.ones(200), np.zeros(250)].astype(int)
    group = np.r_[np.zeros(700), np.ones(450)]

    def histogram(values):  # own range, smoothed counts truncated to integers, normalised, then +1e-6
        counts = np.histogram(values, np.linspace(values.min(), values.max(), 51))[0].astype(float)
        smooth = np.floor(gaussian_filter1d(counts, 1.0))
        return smooth / smooth.sum() + 1e-6

    p_pos, q_pos = histogram(scores[:300]), histogram(scores[700:900])
    p_neg, q_neg = histogram(scores[300:700]), histogram(scores[900:])
    # entropy() renormalises; both histograms sum to 1 + 50e-6, so sum p log(p / q) is that factor times entropy()
    expected = (1 + 50e-6) * np.array([entropy(p_pos, q_pos), entropy(q_pos, p_pos), entropy(p_neg, q_neg),
                                       entropy(q_neg, p_neg)])
    np.testing.assert_allclose(fairness.per_class_score_kl(scores, labels, group, median=False), expected, rtol=1e-10)
    assert fairness.per_class_score_kl(scores, labels, group) == pytest.approx(np.median(expected), rel=1e-10)
    assert fairness.per_class_score_kl(scores, labels, group) != pytest.approx(
        fairness.score_histogram_kl(scores, group), rel=0.05)
    with pytest.raises(ValueError, match="group 1.0 has no example with label 0"):
        fairness.per_class_score_kl(scores[:900], labels[:900], group[:900])
    # three scattered positives in group 1: every smoothed count is below 1 and truncates to 0 (official: NaN)
    keep = np.r_[0:703, 900:1150]
    four = fairness.per_class_score_kl(np.r_[scores[:700], 0.1, 0.5, 0.9, scores[900:]], labels[keep], group[keep],
                                       median=False)
    assert np.isnan(four[:2]).all() and np.isfinite(four[2:]).all()


def test_bootstrap_pools_several_values_per_resample():
    values = np.arange(10.0)
    median, low, high = fairness.bootstrap(lambda v: np.array([v.min(), v.max()]), values, n=50, seed=4)
    rng = np.random.default_rng(4)
    pooled = np.concatenate([[v.min(), v.max()] for v in (values[rng.integers(0, 10, 10)] for _ in range(50))])
    assert median == pytest.approx(np.median(pooled))
    assert (low, high) == pytest.approx(tuple(np.percentile(pooled, [2.5, 97.5])))


def test_hgr_correlation_hand_computed():
    a = np.repeat([0, 1, 2], 4)
    b = np.tile([0, 1], 6)
    assert fairness.hgr_correlation(a, b) == pytest.approx(0, abs=1e-12)  # exactly independent
    assert fairness.hgr_correlation(b, b) == pytest.approx(1)
    assert fairness.hgr_correlation(a, (a + 1) % 3 * 10) == pytest.approx(1)  # a bijection of a
    assert fairness.hgr_correlation(a, np.zeros_like(a)) == 0.0
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, 500)
    y = np.where(rng.random(500) < 0.8, x, 1 - x)
    # for two binary variables the maximal correlation is |Pearson correlation|
    assert fairness.hgr_correlation(x, y) == pytest.approx(abs(np.corrcoef(x, y)[0, 1]), rel=1e-10)


def test_fairness_discrepancy_hand_computed():
    labels = np.array([0, 0, 0, 1])
    assert fairness.fairness_discrepancy(labels, 2) == pytest.approx(math.sqrt(2 * 0.25 ** 2))
    assert fairness.fairness_discrepancy(labels, 2, norm=1) == pytest.approx(0.5)
    assert fairness.kl_to_uniform(labels, 2) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert fairness.fairness_discrepancy(np.array([0, 1, 2, 3]), 4) == 0
    # classes that never occur still count: all mass on one of four classes
    assert fairness.fairness_discrepancy(np.zeros(5, int), 4) == pytest.approx(math.sqrt(0.75 ** 2 + 3 * 0.25 ** 2))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        fairness.fairness_discrepancy(np.array([0, 2]), 2)


def test_bootstrap_contains_the_estimate_and_is_deterministic():
    y_true, y_pred, _, group = random_binary_problem(seed=6)
    point = fairness.accuracy(y_true, y_pred)
    median, low, high = fairness.bootstrap(fairness.accuracy, y_true, y_pred, n=200, seed=1)
    assert low < point < high and low < median < high and high - low < 0.15
    assert fairness.bootstrap(fairness.accuracy, y_true, y_pred, n=200, seed=1) == (median, low, high)
    assert fairness.bootstrap(fairness.accuracy, y_true, y_pred, n=200, seed=2) != (median, low, high)
    # the arrays are resampled together: a metric of (y, y) stays exactly 1
    assert fairness.bootstrap(fairness.accuracy, y_true, y_true, n=20) == (1.0, 1.0, 1.0)
    deo = fairness.bootstrap(fairness.deo, y_true, y_pred, group, n=100)
    assert deo[1] <= fairness.deo(y_true, y_pred, group) <= deo[2]


def test_bootstrap_leaves_out_resamples_where_the_metric_is_undefined():
    # one example of group 1: about a third of the resamples miss it, and DEO is undefined there
    y_true, y_pred = np.ones(8, int), np.array([1, 1, 1, 1, 0, 0, 0, 1])
    group = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    median, low, high = fairness.bootstrap(fairness.deo, y_true, y_pred, group, n=100)
    assert 0 <= low <= median <= high <= 1
    with pytest.raises(ValueError, match="exactly two protected groups"):
        fairness.bootstrap(fairness.deo, y_true, y_pred, np.zeros(8), n=10)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"y_pred must be binary labels"):
        fairness.demographic_parity_difference(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="lengths"):
        fairness.accuracy(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        fairness.accuracy(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no positive"):
        fairness.average_precision(np.zeros(4), np.arange(4))


def test_undefined_group_rates_are_nan():
    rates = fairness.true_positive_rate_per_group(np.array([1, 0, 0]), np.array([1, 0, 1]), np.array([0, 1, 1]))
    assert rates[0] == 1.0 and math.isnan(rates[1])
