"""Latent de-biasing's datasets: the stand-in's correlation in training and balance in the test set, named labels,
and the augmented training set read from a synthetic stage's run folder."""
import os

import numpy as np
import pytest
import torch

from edflow.config import ConfigError
from edflow.data import fetch_batch
from latentdebias.data import SYNTHETIC_FILE, AugmentedTrain, Test, TestBiased, Train, data_options
from latentdebias.synthesis import save_synthetic

DATA = {"dataset": "attrmnist", "target": "digit_group", "protected": "colour", "correlation": 0.8,
        "train_size": 400, "validation_size": 100, "test_size": 200}


def cell_counts(dataset):
    t, g = dataset.labels["digit_group"], dataset.labels["colour"]
    return np.array([[np.sum((t == a) & (g == b)) for b in (0, 1)] for a in (0, 1)])


def test_training_set_is_correlated_and_test_set_balanced():
    config = {"Data": DATA}
    train, test, test_biased = Train(config), Test(config), TestBiased(config)
    # Pearson 0.8 with both attributes balanced: P(t == g) = 0.9, every marginal 1/2
    np.testing.assert_array_equal(cell_counts(train), [[180, 20], [20, 180]])
    np.testing.assert_array_equal(cell_counts(test_biased), [[90, 10], [10, 90]])
    np.testing.assert_array_equal(cell_counts(test), [[50, 50], [50, 50]])


def test_examples_carry_named_labels_that_match_the_image():
    train = Train({"Data": DATA})
    batch = fetch_batch(train, np.arange(32))
    assert set(batch) == {"image", "digit_group", "colour", "synthetic", "index_"}
    image = torch.as_tensor(batch["image"])
    assert image.shape == (32, 3, 32, 32) and image.min() >= -1 and image.max() <= 1
    # red ink (colour 1) is brighter in the red channel than in the green one, green ink the other way round
    ink = image + 1
    red_minus_green = (ink[:, 0] - ink[:, 1]).flatten(1).sum(1)
    np.testing.assert_array_equal((red_minus_green > 0).long().numpy(), np.asarray(batch["colour"]))
    assert batch["synthetic"].sum() == 0
    example = train[3]
    assert example["digit_group"] == train.labels["digit_group"][3]


def test_data_options_name_the_problem():
    with pytest.raises(ConfigError, match="not attributes"):
        data_options({"Data": {"target": "Smiling"}})
    with pytest.raises(ConfigError, match="all different"):
        data_options({"Data": {"target": "colour", "protected": "colour"}})
    assert data_options({"Data": {"protected": ["colour"]}})["protected"] == ("colour",)


def write_synthetic_run(log_root, name, rows=6, image_size=32, target="digit_group"):
    run = log_root / f"2026-01-01T00-00-00_{name}"
    (run / "train" / "checkpoints").mkdir(parents=True)
    (run / "train" / "checkpoints" / "model-1.ckpt").write_bytes(b"")
    rng = np.random.default_rng(0)
    table = {"image": rng.integers(0, 256, (rows, 3, image_size, image_size), dtype=np.uint8),
             "latent": rng.normal(size=(rows, 4)).astype(np.float32),
             "source": np.array([0, 0, 1, 1, 2, 3]), "target": np.array([1, 0, 1, 0, 1, 1]),
             "protected": np.array([[0], [1], [1], [0], [0], [1]]), "pair": np.array([0, 1, 0, 1, 4, 4]),
             "score": np.zeros((rows, 2), dtype=np.float32)}
    save_synthetic(str(run / SYNTHETIC_FILE), table, target, ["colour"])
    return table


def test_augmented_training_set_adds_the_chosen_synthetic_rows(log_root):
    table = write_synthetic_run(log_root, "toy_synthetic")
    config = {"Data": DATA, "first_stage": {"synthetic": {"run": "toy_synthetic"}},
              "Augment": {"stage": "synthetic", "sources": ["sampled", "complement"]}}
    augmented = AugmentedTrain(config)
    assert len(augmented) == 400 + 4
    batch = fetch_batch(augmented, np.arange(398, 404))
    np.testing.assert_array_equal(batch["synthetic"], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(batch["digit_group"][2:], table["target"][:4])
    np.testing.assert_array_equal(batch["colour"][2:], table["protected"][:4, 0])
    expected_images = torch.as_tensor(table["image"][:4]).float() / 127.5 - 1
    torch.testing.assert_close(torch.as_tensor(batch["image"][2:]), expected_images)
    config["Augment"]["sources"] = None
    assert len(AugmentedTrain(config)) == 400 + 6  # every source


def test_augmented_training_set_refuses_mismatched_synthetic_data(log_root):
    write_synthetic_run(log_root, "other_synthetic", target="colour")
    config = {"Data": DATA, "first_stage": {"synthetic": {"run": "other_synthetic"}}}
    with pytest.raises(ConfigError, match="labelled for target 'colour'"):
        AugmentedTrain(config)
    with pytest.raises(ConfigError, match="first_stage/synthetic"):
        AugmentedTrain({"Data": DATA, "first_stage": {"gan": {"run": "x"}}})
    run = log_root / "2026-01-01T00-00-01_unfinished_synthetic"
    (run / "train" / "checkpoints").mkdir(parents=True)
    (run / "train" / "checkpoints" / "model-1.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="not finished"):
        AugmentedTrain({"Data": DATA, "first_stage": {"synthetic": {"run": "unfinished_synthetic"}}})
    assert not os.path.exists(run / SYNTHETIC_FILE)
