"""fairgen's stages chained by run name, at debug size: attribute classifier -> density-ratio classifier -> GAN.

Checks that stage 2 computes r(x) for every training example from the stage-1 run (1 on the reference set), that
the per-epoch evaluation reports fairness discrepancy and FID, and that the sampling command writes N samples.
"""
import json

import numpy as np
import pytest
import torch

from edflow.data import fetch_batch
from edflow.main import build_config, build_iterator, parser, run
from fairgen.scripts import sample

def train(config_name: str, *overrides: str) -> str:
    return run(["-b", f"configs/{config_name}.yaml", "-t", "-d", *overrides])


def debug_config(config_name: str) -> dict:
    """The config a ``-d`` training run of ``configs/<config_name>.yaml`` uses."""
    config, _ = build_config(parser().parse_known_args(["-b", f"configs/{config_name}.yaml", "-t", "-d"])[0], [])
    return config


def metrics(run_root: str) -> dict:
    merged = {}
    with open(f"{run_root}/metrics.jsonl") as f:
        for line in f:
            merged.update(json.loads(line))
    return merged


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    log_root = tmp_path_factory.mktemp("fairgen_logs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDFLOW_LOG_ROOT", str(log_root))
        roots = {"attr_clf": train("attrmnist_fairgen_attr_clf"), "ratio": train("attrmnist_fairgen_ratio")}
        roots["gan"] = train("attrmnist_fairgen_gan", f"+fid.cache_dir={log_root / 'fid_cache'}", "fid.batch_size=8")
        yield log_root, roots


def test_gan_stage_evaluates_fairness_discrepancy_and_fid(stages):
    _, roots = stages
    results = metrics(roots["gan"])
    for key in ("validation/fairness_discrepancy", "validation/fairness_discrepancy_l1", "validation/kl_to_uniform",
                "validation/fid_samples", "train/d_loss", "train/g_loss"):
        assert np.isfinite(results[key]), key
    shares = [results["validation/share_group0"], results["validation/share_group1"]]
    assert sum(shares) == pytest.approx(1.0)
    assert results["validation/fairness_discrepancy"] == pytest.approx(np.linalg.norm(np.array(shares) - 0.5))
    ratio_results = metrics(roots["ratio"])
    assert 0 <= ratio_results["validation/ece"] <= 1


def test_stage_two_weights_every_training_example_by_the_stage_one_ratio(stages, monkeypatch):
    log_root, roots = stages
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(log_root))
    config = debug_config("attrmnist_fairgen_gan")
    config["Trainer"]["alpha"] = 0.5
    (log_root / "check").mkdir()
    iterator = build_iterator(config, str(log_root / "check"), train=True, debug=True)  # a -d config: its stages are debug runs
    data = iterator.datasets["train"]
    assert iterator.ratios.shape == (len(data),)
    batch = fetch_batch(data, np.arange(len(data)))
    is_reference = batch["reference"].bool()
    with torch.no_grad():
        expected = torch.exp(iterator.ratio_model(batch["image"]))
    torch.testing.assert_close(iterator.ratios[is_reference], torch.ones(int(is_reference.sum())))
    torch.testing.assert_close(iterator.ratios[~is_reference], expected[~is_reference])
    torch.testing.assert_close(iterator.weights, iterator.ratios ** 0.5)
    # the logged target: group shares of the weighted training set
    groups = data.labels["group"]
    weights = iterator.weights.double().numpy()
    share = weights[groups == 1].sum() / weights.sum()
    assert iterator.target_shares()["train/target_share_group1"] == pytest.approx(share)


def test_baseline_needs_no_ratio_stage_and_reweighting_needs_one(stages, monkeypatch, tmp_path):
    log_root, _ = stages
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(log_root))
    config = debug_config("attrmnist_fairgen_gan_baseline")
    (tmp_path / "baseline").mkdir()
    iterator = build_iterator(config, str(tmp_path / "baseline"), train=True, debug=True)
    assert iterator.weights is None and iterator.ratio_model is None
    # unweighted, the target is the union of biased and reference data as it is
    assert iterator.target_shares()["train/target_share_group1"] == pytest.approx(
        iterator.datasets["train"].labels["group"].mean())
    config["Trainer"]["reweight"] = 1
    with pytest.raises(ValueError, match="ratio"):
        build_iterator(config, str(tmp_path / "broken"), train=True, debug=True)


def test_sampling_command_writes_n_samples_and_a_grid(stages, tmp_path, monkeypatch):
    log_root, roots = stages
    out = tmp_path / "samples.npz"
    sample.main(["-p", roots["gan"], "-n", "10", "--out", str(out), "--batch-size", "4", "--log-root", str(log_root)])
    with np.load(out) as arrays:
        assert arrays["x"].shape == (10, 3, 32, 32) and arrays["x"].dtype == np.uint8
        assert arrays["z"].shape[0] == 10
        assert set(np.unique(arrays["group"])) <= {0, 1}
    assert (tmp_path / "samples.png").is_file()
