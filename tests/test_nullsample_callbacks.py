"""The downstream fairness metrics (against fairlearn and hand-computed tables) and the image grid."""
import numpy as np
import pytest
import torch
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, false_positive_rate,
                               selection_rate, true_positive_rate)
from PIL import Image

from edflow.data.dataset import ArrayDataset, ExampleDataset
from nullsample.callbacks import fairness_callback, fairness_metrics, null_sample_grid


def random_predictions(num_classes, num_groups, n=400, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, num_classes, n)
    group = rng.integers(0, num_groups, n)
    pred = np.where(rng.random(n) < 0.6, label, (group + rng.integers(0, 2, n)) % num_classes)
    return label, pred, group


def test_binary_metrics_agree_with_fairlearn():
    label, pred, group = random_predictions(2, 2)
    results = fairness_metrics(label, pred, group, num_classes=2)
    rates = MetricFrame(metrics=selection_rate, y_true=label, y_pred=pred, sensitive_features=group).by_group
    assert results["positive_rate_s0"] == pytest.approx(rates[0]) and results["positive_rate_s1"] == pytest.approx(rates[1])
    assert results["dp"] == pytest.approx(demographic_parity_difference(label, pred, sensitive_features=group))
    tpr = MetricFrame(metrics=true_positive_rate, y_true=label, y_pred=pred, sensitive_features=group).difference()
    fpr = MetricFrame(metrics=false_positive_rate, y_true=label, y_pred=pred, sensitive_features=group).difference()
    assert results["tpr_diff"] == pytest.approx(tpr) and results["tnr_diff"] == pytest.approx(fpr)
    assert results["accuracy"] == pytest.approx(np.mean(label == pred))


def test_multiclass_differences_are_one_vs_rest_spreads_averaged_over_classes():
    label, pred, group = random_predictions(4, 3)
    results = fairness_metrics(label, pred, group, num_classes=4)
    dp, tpr, tnr = [], [], []
    for k in range(4):
        dp.append(np.ptp([np.mean(pred[group == g] == k) for g in range(3)]))
        tpr.append(np.ptp([np.mean(pred[(group == g) & (label == k)] == k) for g in range(3)]))
        tnr.append(np.ptp([np.mean(pred[(group == g) & (label != k)] != k) for g in range(3)]))
    assert results["dp"] == pytest.approx(np.mean(dp))
    assert results["tpr_diff"] == pytest.approx(np.mean(tpr))
    assert results["tnr_diff"] == pytest.approx(np.mean(tnr))
    assert "positive_rate_s0" not in results


def test_hgr_is_one_when_predictions_copy_s_and_zero_when_independent():
    group = np.repeat(np.arange(10), 10)
    assert fairness_metrics(group, group, group)["hgr"] == pytest.approx(1.0)
    pred = np.tile(np.arange(10), 10)  # every (pred, s) pair exactly once
    assert fairness_metrics(pred, pred, group)["hgr"] == pytest.approx(0.0, abs=1e-9)


def test_fairness_callback_reads_the_classifier_outputs_and_writes_the_rate_table(tmp_path):
    label, pred, group = random_predictions(3, 3)
    data_out = ExampleDataset({"pred": pred, "label": label, "group": group})
    results = fairness_callback(str(tmp_path), None, data_out, {"Model": {"num_classes": 3}})
    assert results == pytest.approx(fairness_metrics(label, pred, group, 3))
    assert (tmp_path / "positive_rates.yaml").is_file()
    with pytest.raises(KeyError, match="group"):
        fairness_callback(str(tmp_path), None, ExampleDataset({"pred": pred, "label": label}), {})


class ShiftModel(torch.nn.Module):
    def null_sample(self, x):
        return x * 0

    def reconstruct(self, x, s):
        return x


def test_null_sample_grid_writes_rows_of_x_null_sample_and_reconstruction(tmp_path):
    images = torch.rand(12, 3, 8, 8) * 2 - 1
    data = ArrayDataset({"image": images, "s": torch.zeros(12, dtype=torch.long)})
    results = null_sample_grid(ShiftModel(), data, str(tmp_path), n=5)
    assert results["null_sample_change"] == pytest.approx(images[:5].abs().mean().item(), rel=1e-6)
    assert results["reconstruction_error"] == 0
    grid = Image.open(tmp_path / "null_samples.png")
    assert grid.size == (5 * 9 + 1, 3 * 9 + 1)  # 5 columns, 3 rows, 1 pixel padding
