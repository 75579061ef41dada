"""Fairness metrics as edflow eval callbacks: key mapping from the config, YAML results, bootstrap, errors."""
import numpy as np
import pytest
import sklearn.metrics
import yaml
from fairlearn.metrics import demographic_parity_difference

from edflow.data.dataset import ExampleDataset
from fairkit.metrics import callbacks, fairness


def outputs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 2, n)
    digit = (rng.random(n) < 0.3 + 0.4 * color).astype(np.int64)
    probability = np.clip(0.4 * digit + 0.2 * color + 0.4 * rng.random(n), 0, 1)
    return ExampleDataset({"digit": digit, "color": color, "probability": probability[:, None]})


CONFIG = {"fairness": {"keys": {"label": "digit", "group": "color", "score": "probability"}, "threshold": 0.5}}


def test_fairness_callback_computes_every_fitting_metric_with_renamed_keys(tmp_path):
    data_out = outputs()
    results = callbacks.fairness_callback(tmp_path, None, data_out, CONFIG)
    labels = data_out.labels
    y_true, group, scores = labels["digit"], labels["color"], labels["probability"][:, 0]
    y_pred = (scores >= 0.5).astype(int)
    assert results["accuracy"] == pytest.approx(sklearn.metrics.accuracy_score(y_true, y_pred))
    assert results["average_precision"] == pytest.approx(sklearn.metrics.average_precision_score(y_true, scores))
    assert results["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=group))
    assert results["accuracy_group_1"] == pytest.approx(np.mean(y_true[group == 1] == y_pred[group == 1]))
    assert results["deo"] == pytest.approx(fairness.deo(y_true, y_pred, group))
    assert {"score_kl", "hgr", "bias_amplification", "equalized_odds_difference", "f1"} <= set(results)
    assert "fairness_discrepancy" not in results  # needs fairness/num_classes
    written = yaml.safe_load((tmp_path / "fairness.yaml").read_text())
    assert written == pytest.approx(results)


def test_single_metric_callback_with_bootstrap(tmp_path):
    config = {"fairness": dict(CONFIG["fairness"], bootstrap=50, seed=3)}
    results = callbacks.deo_callback(tmp_path, None, outputs(), config)
    assert set(results) == {"deo", "deo_median", "deo_low", "deo_high"}
    assert results["deo_low"] <= results["deo"] <= results["deo_high"]
    assert yaml.safe_load((tmp_path / "deo.yaml").read_text()) == pytest.approx(results)
    assert callbacks.deo_callback(tmp_path, None, outputs(), config) == results  # seeded


def test_fairness_discrepancy_of_generated_attribute_predictions(tmp_path):
    data_out = ExampleDataset({"pred": np.array([0, 0, 0, 1, 2, 3, 3, 3])})
    config = {"fairness": {"num_classes": 4}}
    results = callbacks.fairness_callback(tmp_path, None, data_out, config)
    p = np.array([3, 1, 1, 3]) / 8
    assert results["fairness_discrepancy"] == pytest.approx(np.linalg.norm(p - 0.25))
    assert results["fairness_discrepancy_l1"] == pytest.approx(np.abs(p - 0.25).sum())
    assert results["kl_to_uniform"] == pytest.approx(np.sum(p * np.log(p * 4)))
    with pytest.raises(ValueError, match="fairness/num_classes"):
        callbacks.fairness_discrepancy_callback(tmp_path, None, data_out, {})


def test_fairness_callback_skips_metrics_undefined_on_these_outputs(tmp_path):
    data_out = ExampleDataset({"label": np.zeros(4, int), "score": np.array([0.1, 0.6, 0.2, 0.7])})
    results = callbacks.fairness_callback(tmp_path, None, data_out, {})
    assert results["accuracy"] == 0.5 and "average_precision" not in results  # no positive labels


def test_callbacks_explain_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"lacks the roles \['group'\]"):
        callbacks.demographic_parity_callback(tmp_path, None, ExampleDataset({"pred": np.array([0, 1])}), {})
    with pytest.raises(KeyError, match="unknown roles"):
        callbacks.accuracy_callback(tmp_path, None, outputs(), {"fairness": {"keys": {"target": "digit"}}})
    with pytest.raises(ValueError, match="no fairness metric fits"):
        callbacks.fairness_callback(tmp_path, None, ExampleDataset({"other": np.zeros(3)}), {})


def test_fid_callback_loads_the_classifier_of_a_fidnet_run(tmp_path, monkeypatch):
    """fid: {extractor: classifier, run: <name>} builds the extractor from a trained run of fairkit.fidnet."""
    import torch

    from edflow.data.dataset import ArrayDataset, ExampleDataset
    from edflow.main import run
    from fairkit.metrics.callbacks import fid_callback

    config = tmp_path / "fidnet.yaml"
    config.write_text(
        "experiment_name: tiny_fidnet\nmodel: fairkit.fidnet.Model\niterator: fairkit.fidnet.Trainer\n"
        "datasets: {train: {target: fairkit.data.MNIST, params: {split: test, size: 32, subset: 64}}}\n"
        "batch_size: 16\nnum_steps: 2\nModel: {channels: [4, 8]}\n")
    run(["-b", str(config), "-t", "--log-root", str(tmp_path / "logs")])
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(tmp_path / "logs"))
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(40, 1, 32, 32, generator=generator) * 2 - 1
    data_in = ArrayDataset({"image": real})
    settings = {"fid": {"extractor": "classifier", "run": "tiny_fidnet", "cache_dir": str(tmp_path / "cache")}}
    same = fid_callback(str(tmp_path), data_in, ExampleDataset({"samples": real.numpy()}), settings)
    other = fid_callback(str(tmp_path), data_in, ExampleDataset({"samples": (real * 0 - 1).numpy()}), settings)
    assert abs(same["fid_samples"]) < 1e-6 < other["fid_samples"]
