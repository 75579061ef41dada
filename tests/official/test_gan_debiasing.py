"""Latent de-biasing beside princetonvisualai/gan-debiasing (``FAIRKIT_OFFICIAL_GAN_DEBIASING``): z' from the
official hyperplane script and the official metric code, on the same SVMs, latents and scores as ours.

The official z' lives in the ``__main__`` block of ``linear.py`` (which reads pickles from its working directory);
only its statements that normalise the SVMs and compute z' are run, row by row. The metrics are ``utils.py``'s
bootstrap functions with one resample that is the whole set, so each gives the metric of all examples; the KL's
bootstrap is also run on our resamples, so that its median of the pooled values can be compared too.
"""
from __future__ import annotations

import copy
import types

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.metrics import average_precision_score, f1_score, recall_score
from sklearn.svm import LinearSVC

from _load import load_functions, load_statements, official_checkout, run_statements
from fairkit.metrics.fairness import per_class_score_kl
from latentdebias.callbacks import fairness_metrics, predictions, validation_thresholds
from latentdebias.hyperplanes import complement_latents, normalise

CHECKOUT = official_checkout("gan_debiasing")


class OfficialNumpy(types.ModuleType):
    """numpy for the official metric code: its bootstrap draws the given resamples (by default the identity, so one
    repeat is the metric of the whole set), and it keeps the ``np.float`` alias that numpy >= 1.24 removed."""

    float = float

    def __init__(self, resamples=None):
        super().__init__("numpy")
        draws = iter(resamples) if resamples is not None else None
        self.random = types.SimpleNamespace(
            randint=lambda low, high, size: np.arange(size) if draws is None else next(draws))

    def __getattr__(self, name):
        return getattr(np, name)


UTILS = load_functions(
    CHECKOUT / "utils.py",
    ["calibrated_threshold", "kl", "smoothed_hist_kl_distance", "bootstrap_deo", "bootstrap_ap",
     "bog_attribute_to_task", "get_at", "bootstrap_bias_amp", "bootstrap_kl"],
    {"np": OfficialNumpy(), "average_precision_score": average_precision_score, "f1_score": f1_score,
     "recall_score": recall_score, "gaussian_filter": gaussian_filter})


def latents_with_labels(n=600, dims=6, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, dims))
    protected = (z[:, 0] + 0.5 * z[:, 1] + 0.3 * rng.normal(size=n) > 0.2).astype(int)
    target = (z[:, 1] - 0.4 * z[:, 2] + 0.3 * rng.normal(size=n) > -0.1).astype(int)
    return z, protected, target


def test_complementary_latents_equal_the_official_z_prime(compare):
    z, protected, target = latents_with_labels()
    svm_g = LinearSVC(max_iter=100000, random_state=0).fit(z, protected)
    svm_a = LinearSVC(max_iter=100000, random_state=0).fit(z, target)
    w_g, b_g = normalise(svm_g.coef_[0], svm_g.intercept_[0])
    w_a, b_a = normalise(svm_a.coef_[0], svm_a.intercept_[0])
    ours = complement_latents(z, w_a, b_a, w_g, b_g)

    setup = load_statements(CHECKOUT / "linear.py", [
        "clf_g_norm", "clf_g.coef_", "clf_g.intercept_", "clf_a_norm", "clf_a.coef_", "clf_a.intercept_",
        "g_perp_a", "cos_theta", "sin_theta"])
    per_row = load_statements(CHECKOUT / "linear.py", ["x", "dist", "X_all[j - 15000]"])
    offset = 15000  # the script edits the latents from index 15000 on and stores row j at j - 15000
    scope = {"np": np, "clf_g": copy.deepcopy(svm_g), "clf_a": copy.deepcopy(svm_a),
             "X": np.concatenate([np.zeros((offset, z.shape[1])), z]), "X_all": np.zeros_like(z)}
    run_statements(setup, scope)
    for j in range(offset, offset + len(z)):
        scope["j"] = j
        run_statements(per_row, scope)
    compare("z' (linear.py)", ours, scope["X_all"])
    moved = np.abs(ours - z).max()
    assert moved > 0.1  # the edit is not the identity


def scores_and_labels(n, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, n)
    labels = (rng.random(n) < np.where(groups == 1, 0.7, 0.3)).astype(int)  # target and group correlated
    scores = 1 / (1 + np.exp(-(1.5 * labels + 0.8 * groups - 1.1 + rng.normal(size=n))))
    return scores, labels, groups


def official_metrics(val, test):
    """main.py's evaluation: the calibrated threshold on validation, ``pred = scores > threshold`` on test."""
    (val_scores, val_labels, _), (scores, labels, groups) = val, test
    glue = load_statements(CHECKOUT / "main.py", ["cal_thresh", "test_pred"])
    scope = run_statements(glue, {"np": np, "utils": types.SimpleNamespace(**UTILS), "val_scores": val_scores,
                                  "val_targets": np.stack([val_labels, np.zeros_like(val_labels)], 1),
                                  "test_scores": scores})
    pred = scope["test_pred"]
    return scope["cal_thresh"], pred, {
        "AP": UTILS["bootstrap_ap"](labels, scores, repeat=1)[0],
        "DEO": UTILS["bootstrap_deo"](groups, labels, pred, repeat=1)[0],
        "BA": UTILS["bootstrap_bias_amp"](groups, labels, pred)[0],
        "KL": UTILS["bootstrap_kl"](groups, labels, scores, repeat=1)[0]}


@pytest.fixture(scope="module")
def both_metrics():
    val, test = scores_and_labels(400, seed=1), scores_and_labels(500, seed=2)
    threshold = validation_thresholds(val[0], val[1])["calibrated_threshold"]
    ours = fairness_metrics(*test, threshold=threshold, options={"bootstrap": 0})
    return threshold, predictions(test[0], threshold), ours, official_metrics(val, test)


def test_calibrated_threshold_and_predictions(compare, both_metrics):
    threshold, pred, _, (official_threshold, official_pred, _) = both_metrics
    compare("calibrated threshold", threshold, official_threshold)
    compare("test predictions", pred, official_pred, tol=0)


@pytest.mark.parametrize("name", ["AP", "DEO", "BA"])
def test_metrics_equal_the_official_ones(compare, both_metrics, name):
    _, _, ours, (_, _, official) = both_metrics
    assert np.isfinite(ours[name.lower()])
    compare(name, ours[name.lower()], official[name])


def test_kl_equals_the_official_one(compare, both_metrics):
    _, _, ours, (_, _, official) = both_metrics
    compare("KL (median of four)", ours["kl"], official["KL"])
    assert ours["kl"] > 0.01  # the groups' scores differ


def test_kl_four_values_equal_the_official_ones(compare):
    scores, labels, groups = scores_and_labels(500, seed=2)
    official = [UTILS["smoothed_hist_kl_distance"](scores[(labels == t) & (groups == 0)],
                                                   scores[(labels == t) & (groups == 1)]) for t in (1, 0)]
    compare("KL four values", per_class_score_kl(scores, labels, groups, median=False), np.ravel(official))


def test_kl_bootstrap_equals_the_official_one_on_the_same_resamples(compare):
    scores, labels, groups = scores_and_labels(500, seed=2)
    n, seed = 50, 4
    ours = fairness_metrics(scores, labels, groups, threshold=0.5, options={"bootstrap": n, "seed": seed})
    generator = np.random.default_rng(seed)  # the resamples of fairkit.metrics.fairness.bootstrap
    resamples = [generator.integers(0, len(scores), len(scores)) for _ in range(n)]
    bootstrap_kl = load_functions(CHECKOUT / "utils.py", ["kl", "smoothed_hist_kl_distance", "bootstrap_kl"],
                                  {"np": OfficialNumpy(resamples), "gaussian_filter": gaussian_filter})["bootstrap_kl"]
    official_median, _ = bootstrap_kl(groups, labels, scores, repeat=n)
    compare("KL bootstrap median (50 resamples)", ours["kl_median"], official_median)
