"""Null-sampling as a stage: the two configs run one after the other, the classifier stage sees exactly the first
stage's null-samples, and the cVAE's null-samples ignore s."""
import glob
import os

import numpy as np
import pytest
import torch

from edflow.config import load_yaml
from edflow.first_stage import load_stage
from edflow.main import run
from nullsample.data import ColoredMNIST
from nullsample.iterators import ClassifierTrainer
from nullsample.models import CVAE, Classifier
from nullsample.null_sampling import to_uint8

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_path(name):
    return os.path.join(ROOT, "configs", f"{name}.yaml")


@pytest.fixture(scope="module")
def two_stage_runs(tmp_path_factory):
    log_root = str(tmp_path_factory.mktemp("logs"))
    previous = os.environ.get("EDFLOW_LOG_ROOT")
    try:
        flow = run(["-b", config_path("cmnist_cflow"), "-t", "-d", "--log-root", log_root])
        classifier = run(["-b", config_path("cmnist_nullsample_clf"), "-t", "-d", "--log-root", log_root])
    finally:
        if previous is None:
            os.environ.pop("EDFLOW_LOG_ROOT", None)
        else:
            os.environ["EDFLOW_LOG_ROOT"] = previous
    return flow, classifier


def test_classifier_config_chains_on_the_flow_run_and_reports_fairness(two_stage_runs):
    flow, classifier = two_stage_runs
    results = load_yaml(sorted(glob.glob(os.path.join(classifier, "eval", "*", "*", "results.yaml")))[-1])
    for key in ("test/accuracy", "test/hgr", "test/dp", "test/tpr_diff", "test/tnr_diff"):
        assert key in results
    assert 0 <= results["test/accuracy"] <= 1 and 0 <= results["test/hgr"] <= 1
    flow_grids = glob.glob(os.path.join(flow, "eval", "*", "*", "validation", "null_samples.png"))
    assert flow_grids


def stage_and_config(two_stage_runs):
    flow, classifier = two_stage_runs
    config = load_yaml(sorted(glob.glob(os.path.join(classifier, "configs", "train_*.yaml")))[-1])
    return load_stage({"run": flow}), config


def test_classifier_stage_trains_on_the_first_stage_null_samples(two_stage_runs, tmp_path):
    stage, config = stage_and_config(two_stage_runs)
    data = ColoredMNIST("biased", subset=20, config=config)
    trainer = ClassifierTrainer(config, str(tmp_path), Classifier(config), datasets={"train": data},
                                first_stage=stage)
    nulled = trainer.datasets["train"]
    raw = data.get_batch(np.arange(20))
    assert torch.equal(nulled.arrays["image"], to_uint8(stage.null_sample(raw["image"])))
    assert torch.equal(nulled.arrays["y"], raw["y"]) and torch.equal(nulled.arrays["s"], raw["s"])
    assert nulled.get_batch(np.arange(3))["image"].shape == (3, 3, 32, 32)


def test_baseline_keeps_raw_images_and_a_data_mismatch_is_an_error(two_stage_runs, tmp_path):
    stage, config = stage_and_config(two_stage_runs)
    data = ColoredMNIST("biased", subset=20, config=config)
    baseline = ClassifierTrainer(config, str(tmp_path), Classifier(config), datasets={"train": data})
    assert baseline.datasets["train"] is data
    other = {**config, "Data": {**config["Data"], "sigma": 0.05}}
    with pytest.raises(ValueError, match="sigma"):
        ClassifierTrainer(other, str(tmp_path), Classifier(other),
                          datasets={"train": ColoredMNIST("biased", subset=20, config=other)}, first_stage=stage)


def test_cvae_null_sample_decodes_the_mean_with_s_zero_and_ignores_s():
    torch.manual_seed(0)
    model = CVAE({"Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8}}).eval()
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    mu, _ = model.encoder(x)
    expected = torch.sigmoid(model.decoder(mu, torch.zeros(5, 3))) * 2 - 1
    assert torch.allclose(model.null_sample(x), expected)
    with_s = [model.reconstruct(x, torch.full((5,), k)) for k in range(3)]
    assert not torch.allclose(with_s[0], with_s[1])  # reconstructions use s, null-samples do not
    logits, mu_forward, logvar, z = model(x, torch.zeros(5, dtype=torch.long))
    assert logits.shape == x.shape and torch.allclose(mu_forward, mu) and z.shape == (5, 4)


def test_mp32_classifier_is_nifrs_mp_32x32_net():
    config = {"Model": {"in_channels": 3, "num_classes": 10, "channels": [64, 128, 256, 512], "arch": "mp32"}}
    model = Classifier(config)
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in model.modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert convs == [(3, 64, (5, 5), (0, 0)), (64, 128, (3, 3), (1, 1)), (128, 256, (3, 3), (1, 1)),
                     (256, 512, (3, 3), (1, 1))]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 4
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="Model/arch mp32"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="Model/arch"):
        Classifier({"Model": {"arch": "resnet"}})
