"""The evaluation of latent de-biasing on hand-computed cases: thresholds picked on validation scores, AP, DEO, BA
and KL at the calibrated threshold, the bootstrap, and the classifier trainer's wiring (validation sets the
thresholds that the test split is scored with)."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.stats import entropy

from edflow.config import ConfigError
from edflow.data.dataset import ExampleDataset
from fairkit.metrics.fairness import per_class_score_kl
from latentdebias.callbacks import fairness_metrics, validation_thresholds
from latentdebias.iterators import ClassifierTrainer
from latentdebias.models import AttributeClassifier

# Validation: scores from high to low with labels 1 0 1 1 0 0.
VALIDATION_SCORES = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.1])
VALIDATION_LABELS = np.array([1, 0, 1, 1, 0, 0])
# Test: group 0 has P(t=1|g) = 3/4, group 1 has 1/4, P(t=1) = 1/2. At threshold 0.5 the classifier predicts 1 for
# all of group 0 and 0 for all of group 1: it amplifies the correlation.
TEST_SCORES = np.array([0.9, 0.6, 0.55, 0.52, 0.45, 0.3, 0.2, 0.1])
TEST_LABELS = np.array([1, 1, 1, 0, 1, 0, 0, 0])
TEST_GROUPS = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_validation_thresholds_by_hand():
    """Calibrated: the 3rd largest score (3 positives). F1 at each cut (TP, FP): 0.9 (1,0) 0.5; 0.8 (1,1) 0.4;
    0.7 (2,1) 0.667; 0.4 (3,1) 0.857; 0.3 (3,2) 0.75; 0.1 (3,3) 0.667 -> 0.4."""
    thresholds = validation_thresholds(VALIDATION_SCORES, VALIDATION_LABELS)
    assert thresholds == {"f1_threshold": 0.4, "calibrated_threshold": 0.7}


def test_fairness_metrics_by_hand():
    """AP: positives at ranks 1, 2, 3, 5 -> (1 + 1 + 1 + 4/5) / 4 = 0.95. DEO: TPR 3/3 in group 0, 0/1 in group 1.
    BA: each of the four (t, g) cells moves 1/4 further in the direction of the correlation -> 0.25."""
    results = fairness_metrics(TEST_SCORES, TEST_LABELS, TEST_GROUPS, threshold=0.5, options={"bootstrap": 0})
    assert results["ap"] == pytest.approx(0.95)
    assert results["deo"] == pytest.approx(1.0)
    assert results["ba"] == pytest.approx(0.25)
    assert "ap_median" not in results


def test_bias_amplification_is_negative_when_predictions_weaken_the_correlation():
    """Threshold 0.05 predicts 1 everywhere: P(t^=1|g) = 1 in both groups. Cells (1,0): +1/4; (0,0): sign -,
    0 - 1/4 -> +1/4; (1,1): sign -, 1 - 1/4 -> -3/4; (0,1): sign +, 0 - 3/4 -> -3/4; mean -1/4."""
    results = fairness_metrics(TEST_SCORES, TEST_LABELS, TEST_GROUPS, threshold=0.05, options={"bootstrap": 0})
    assert results["ba"] == pytest.approx(-0.25)
    assert results["deo"] == pytest.approx(0.0)


def test_bias_amplification_is_undefined_where_target_and_group_are_independent():
    labels, groups = np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1])
    results = fairness_metrics(np.array([0.9, 0.8, 0.3, 0.1]), labels, groups, threshold=0.5,
                               options={"bootstrap": 20})
    assert np.isnan(results["ba"]) and np.isnan(results["ba_median"])
    assert results["deo"] == pytest.approx(1.0)


def smoothed_histogram(values, edges):
    counts = np.histogram(values, bins=edges)[0].astype(float)
    smooth = gaussian_filter1d(counts, 1.0) + 1e-6
    return smooth / smooth.sum()


def test_kl_of_the_score_histograms():
    """Metrics/kl: official (the default) is the median of the official four per-class KLs, pooled over the
    bootstrap's resamples; shared_range is KL(g0 || g1) over all scores on one common range."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.beta(5, 2, 300), rng.beta(2, 5, 300)])
    groups = np.repeat([0, 1], 300)
    labels = (rng.random(600) < scores).astype(int)
    results = fairness_metrics(scores, labels, groups, threshold=0.5, options={"bootstrap": 20, "seed": 2})
    assert results["kl"] == pytest.approx(per_class_score_kl(scores, labels, groups), rel=1e-12)
    generator = np.random.default_rng(2)
    pooled = [per_class_score_kl(scores[i], labels[i], groups[i], median=False)
              for i in (generator.integers(0, 600, 600) for _ in range(20))]
    assert results["kl_median"] == pytest.approx(np.median(np.concatenate(pooled)), rel=1e-12)

    edges = np.linspace(scores.min(), scores.max(), 51)  # 50 bins on the common range
    expected = entropy(smoothed_histogram(scores[:300], edges), smoothed_histogram(scores[300:], edges))
    shared = {"bootstrap": 0, "kl": "shared_range"}
    results = fairness_metrics(scores, labels, groups, threshold=0.5, options=shared)
    assert results["kl"] == pytest.approx(expected, rel=1e-9)
    same = fairness_metrics(np.tile(scores[:300], 2), labels, groups, threshold=0.5, options=shared)
    assert same["kl"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="Metrics/kl 'shared'"):
        fairness_metrics(scores, labels, groups, threshold=0.5, options={"kl": "shared"})


def test_bootstrap_median_and_interval():
    rng = np.random.default_rng(1)
    scores, groups = rng.random(400), rng.integers(0, 2, 400)
    labels = (rng.random(400) < 0.3 + 0.4 * groups).astype(int)
    results = fairness_metrics(scores, labels, groups, threshold=0.5, options={"bootstrap": 60, "seed": 3})

    def deo(s, y, g):
        predicted = (s >= 0.5).astype(int)
        return abs(predicted[(y == 1) & (g == 0)].mean() - predicted[(y == 1) & (g == 1)].mean())

    rng = np.random.default_rng(3)  # the bootstrap's resamples: one generator seeded with Metrics/seed
    resampled = [deo(*(a[i] for a in (scores, labels, groups))) for i in (rng.integers(0, 400, 400) for _ in range(60))]
    assert results["deo_median"] == pytest.approx(np.median(resampled))
    for name in ("ap", "deo", "ba", "kl"):
        assert results[f"{name}_low"] <= results[f"{name}_median"] <= results[f"{name}_high"]


def test_resamples_where_a_metric_is_undefined_are_left_out():
    """One example of group 1: many resamples lack it (DEO undefined there); they must not stop the bootstrap."""
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.7])
    labels, groups = np.array([1, 1, 0, 0, 1]), np.array([0, 0, 0, 0, 1])
    results = fairness_metrics(scores, labels, groups, threshold=0.5, options={"bootstrap": 50})
    assert np.isfinite(results["deo_median"]) and np.isfinite(results["ap_median"])


def tiny_config():
    return {"Data": {"dataset": "attrmnist", "target": "digit_group", "protected": "colour"},
            "Model": {"backbone": "resnet", "width": 2, "blocks": [1], "head_hidden": []},
            "Metrics": {"bootstrap": 0}}


def test_trainer_scores_test_splits_at_the_validation_threshold(tmp_path):
    config = tiny_config()
    validation, test = object(), object()
    trainer = ClassifierTrainer(config, str(tmp_path), AttributeClassifier(config),
                                datasets={"test": test, "validation": validation})
    assert trainer.eval_splits() == ["validation", "test"]
    callback = trainer.get_callbacks()["classifier"]
    found = callback(str(tmp_path), validation, ExampleDataset({"score": VALIDATION_SCORES,
                                                                "label": VALIDATION_LABELS}), config)
    assert found["calibrated_threshold"] == 0.7 and found["f1_threshold"] == 0.4
    assert float(trainer.model.calibrated_threshold) == 0.7 and float(trainer.model.f1_threshold) == 0.4
    test_out = ExampleDataset({"score": TEST_SCORES + 0.2, "label": TEST_LABELS, "group": TEST_GROUPS})
    results = callback(str(tmp_path), test, test_out, config)
    assert results["deo"] == pytest.approx(1.0)  # at 0.7: the shifted scores of group 0 pass, those of group 1 not
    assert results["ba"] == pytest.approx(0.25)
    assert (tmp_path / "classifier.yaml").is_file()


def test_classifier_labels_at_its_f1_threshold():
    model = AttributeClassifier(tiny_config())
    model.set_thresholds(f1_threshold=0.6, calibrated_threshold=0.7)
    model.scores = lambda x: torch.tensor([0.59, 0.6, 0.9])
    assert model.predict(torch.zeros(3, 3, 32, 32)).tolist() == [0, 1, 1]


def test_results_table_cells_in_the_papers_units():
    from latentdebias.scripts.table import category_means, format_cell

    run = {"test/deo": 0.2, "test/deo_median": 0.21, "test/deo_low": 0.18, "test/deo_high": 0.25, "test/kl": 0.5}
    assert format_cell([run], "test", "deo") == "21.0 [18.0, 25.0]"
    assert format_cell([run], "test", "kl") == "0.50"  # no bootstrap: the point estimate
    assert format_cell([run], "test", "ba") == "n/a"
    seeds = [{"test/ap_median": v, "test/ap_low": 0, "test/ap_high": 1} for v in (0.90, 0.92, 0.94)]
    assert format_cell(seeds, "test", "ap") == "92.0 ± 2.0"
    rows = {"Big_Lips": ([{"test/ap_median": 0.6}], [{"test/ap_median": 0.5}]),
            "Big_Nose": ([{"test/ap_median": 0.8}], [{"test/ap_median": 0.7}])}
    assert category_means(rows, "test")["inconsistently labelled"]["ap"] == pytest.approx((70.0, 60.0))
