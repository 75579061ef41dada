"""The stand-in's configs chained by first_stage, run in order with `edflow -t -d` in one log root: baseline
classifiers, GAN, synthetic stage, augmented training; then what the synthetic stage wrote is checked against
the hyperplanes its checkpoint holds."""
import glob
import os

import numpy as np
import pytest
import yaml

from edflow.first_stage import load_stage
from edflow.main import run
from latentdebias.data import SOURCES, SYNTHETIC_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("target_clf", "protected_clf", "gan", "synthetic", "augmented")


def config_path(stage):
    return os.path.join(ROOT, "configs", f"attrmnist_latentdebias_{stage}.yaml")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    previous = os.environ.get("EDFLOW_LOG_ROOT")
    roots = {stage: run(["-b", config_path(stage), "-t", "-d", "--log-root", str(logs)]) for stage in STAGES}
    yield roots
    if previous is None:
        os.environ.pop("EDFLOW_LOG_ROOT", None)
    else:
        os.environ["EDFLOW_LOG_ROOT"] = previous


def test_every_stage_finishes_with_a_checkpoint(chain):
    for stage, root in chain.items():
        assert glob.glob(os.path.join(root, "train", "checkpoints", "model-*.ckpt")), stage
        with open(os.path.join(root, "status.yaml")) as f:
            assert yaml.safe_load(f)["status"] == "finished", stage


def test_synthetic_set_pairs_latents_with_their_complements(chain):
    hyperplanes = load_stage({"run": chain["synthetic"]})
    with np.load(os.path.join(chain["synthetic"], SYNTHETIC_FILE)) as stored:
        table = {key: stored[key] for key in stored.files}
    sampled = np.flatnonzero(table["source"] == SOURCES.index("sampled"))
    complement = np.flatnonzero(table["source"] == SOURCES.index("complement"))
    assert len(sampled) == len(complement) == 64
    z, z_prime = table["latent"][table["pair"][complement]].astype(np.float64), table["latent"][complement]
    w_t, w_g = hyperplanes.target_w.numpy()[0], hyperplanes.protected_w.numpy()[0]
    b_g = float(hyperplanes.protected_b[0])
    np.testing.assert_allclose(z_prime @ w_t, z @ w_t, atol=1e-4)  # latents are stored as float32
    np.testing.assert_allclose(z_prime @ w_g + b_g, -(z @ w_g + b_g), atol=1e-4)
    np.testing.assert_array_equal(table["target"][complement], table["target"][table["pair"][complement]])
    np.testing.assert_array_equal(table["protected"][complement], 1 - table["protected"][table["pair"][complement]])
    assert table["image"].dtype == np.uint8 and table["image"].shape[1:] == (3, 32, 32)
    assert os.path.isfile(os.path.join(chain["synthetic"], "synthetic", "pairs.png"))


def test_augmented_run_is_scored_with_the_paper_metrics(chain):
    results = glob.glob(os.path.join(chain["augmented"], "eval", "*", "*", "results.yaml"))
    with open(results[-1]) as f:
        values = yaml.safe_load(f)
    for split in ("test", "test_biased"):
        for metric in ("ap", "deo", "ba", "kl"):
            assert f"{split}/{metric}_median" in values
    assert "validation/calibrated_threshold" in values


def test_pipeline_chains_one_classifier_synthetic_and_augmented_run_per_target(tmp_path):
    from edflow.main import build_config, parser
    from latentdebias.scripts.pipeline import plan

    stages = plan("celeba", targets=["Smiling", "Bangs"])
    assert [s.key for s in stages] == ["protected_clf", "gan"] + ["target_clf", "synthetic", "augmented"] * 2
    by_name = {s.name: s for s in stages}
    synthetic = by_name["celeba_latentdebias_synthetic_Bangs"]
    augmented = by_name["celeba_latentdebias_augmented_Bangs"]
    assert "first_stage.target_clf.run=celeba_latentdebias_target_clf_Bangs" in synthetic.overrides
    assert "first_stage.synthetic.run=celeba_latentdebias_synthetic_Bangs" in augmented.overrides
    for stage in stages:  # every override names an existing key, and the config says what the name says
        args, overrides = parser().parse_known_args(stage.argv(str(tmp_path), debug=False))
        config, _ = build_config(args, overrides)
        if stage.key in ("target_clf", "synthetic", "augmented"):
            assert config["Data"]["target"] == stage.name.rsplit("_", 1)[1]
    cpu = plan("attrmnist", cpu=True, variant="domdep")
    assert [s.name for s in cpu][-2:] == ["attrmnist_latentdebias_synthetic_domdep_cpu",
                                          "attrmnist_latentdebias_augmented_domdep_cpu"]
    assert [s.key for s in plan("celeba", variant="multi")][:3] == ["protected_clf", "young_clf", "gan"]


def test_pipeline_cpu_refuses_a_dataset_without_cpu_overlays(capsys):
    """CelebA has no configs/cpu/ overlays: --cpu must stop before any stage instead of running the paper configs."""
    from latentdebias.scripts import pipeline

    with pytest.raises(pipeline.PipelineError, match="no CPU-scale overlay configs/cpu/celeba_latentdebias_"):
        pipeline.plan("celeba", cpu=True)
    with pytest.raises(SystemExit) as exit_info:
        pipeline.main(["--dataset", "celeba", "--cpu", "--log-root", "unused"])
    assert exit_info.value.code == 2
    assert "--dataset attrmnist --cpu" in capsys.readouterr().err
    # every stage of the stand-in has its overlay, so --cpu keeps working there
    assert all(len(stage.configs) == 2 for stage in pipeline.plan("attrmnist", cpu=True))


def test_a_classifier_with_the_cosine_schedule_can_be_evaluated_again(tmp_path):
    """Evaluation runs build no training set; the iterator must still hold the schedule its checkpoints saved, or
    `edeval -p <run> -c best` (the README's re-evaluation) refuses the checkpoint."""
    from edflow.tools import evaluate_run

    root = run(["-b", config_path("target_clf"), "-t", "-d", "--log-root", str(tmp_path), "+Trainer.schedule=cosine"])
    results, path = evaluate_run(["-p", root, "-c", "best"])
    assert "test/deo" in results and os.path.isfile(path)
