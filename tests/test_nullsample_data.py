"""Coloured MNIST and the CelebA splits of null-sampling."""
import numpy as np
import pytest
import torch

from fairkit.data import load_mnist
from fairkit.data.fixtures import write_celeba
from fairkit.metrics.fairness import hgr_correlation
from nullsample.data import PALETTE, CelebANullSample, ColoredMNIST, split_mnist_train


@pytest.fixture(scope="module")
def mnist_train():
    return load_mnist("train")


def cmnist(split, sigma=0.0, subset=None, **data):
    return ColoredMNIST(split, subset=subset, config={"Data": {"sigma": sigma, **data}})


def test_mnist_train_splits_40_60_without_overlap():
    pretrain, biased = split_mnist_train(60000, 0.4, seed=0)
    assert len(pretrain) == 24000 and len(biased) == 36000
    assert np.array_equal(np.sort(np.concatenate([pretrain, biased])), np.arange(60000))
    assert len(cmnist("pretrain")) == 24000 and len(cmnist("biased")) == 36000 and len(cmnist("test")) == 10000


def test_biased_split_has_s_equal_y_and_the_others_independent_s():
    assert np.array_equal(cmnist("biased").labels["s"], cmnist("biased").labels["y"])
    for split in ("pretrain", "test"):
        labels = cmnist(split).labels
        cells = np.bincount(labels["y"] * 10 + labels["s"], minlength=100)
        assert cells.min() > 0
        assert hgr_correlation(labels["y"], labels["s"]) < 0.05
        assert np.abs(np.bincount(labels["s"]) / len(labels["s"]) - 0.1).max() < 0.01


def test_sigma_zero_images_are_binarised_digits_in_the_palette_colour_padded_to_32(mnist_train):
    data = cmnist("biased", subset=50)
    _, biased = split_mnist_train(60000, 0.4, seed=0)
    raw = mnist_train[0][biased[:50]]
    batch = data.get_batch(np.arange(50))
    images, s = batch["image"].numpy(), batch["s"].numpy()
    assert images.shape == (50, 3, 32, 32) and images.dtype == np.float32
    assert np.all(images[:, :, :2] == -1) and np.all(images[:, :, :, -2:] == -1)
    expected = (raw > 127)[:, None] * PALETTE[s][:, :, None, None] * 2 - 1
    assert np.allclose(images[:, :, 2:30, 2:30], expected, atol=1e-6)


def test_colour_noise_has_standard_deviation_sigma_and_stays_in_range():
    data = cmnist("pretrain", sigma=0.05)
    colours, s = data.arrays["colour"].numpy(), data.labels["s"]
    assert colours.min() >= 0 and colours.max() <= 1
    deviation = colours - PALETTE[s]
    inside = (PALETTE[s] > 0.2) & (PALETTE[s] < 0.8)  # channels at 128/255, never clipped at 4 sigma
    assert deviation[inside].std() == pytest.approx(0.05, rel=0.05)
    assert abs(deviation[inside].mean()) < 0.005


@pytest.mark.parametrize("sigma", [0.0025, 0.01])
def test_sigma_as_a_variance_gives_that_empirical_colour_variance(sigma):
    # the test split is drawn once, from the seed; the redrawn pretrain split from torch's generator: both must
    # give colours of variance sigma around the palette (on the channels at 128/255, which stay unclipped)
    drawn_once = cmnist("test", sigma=sigma, sigma_kind="variance")
    colours, s = drawn_once.arrays["colour"].numpy(), drawn_once.labels["s"]
    torch.manual_seed(0)
    redrawn = cmnist("pretrain", sigma=sigma, sigma_kind="variance", redraw=True)
    batch = redrawn.get_batch(np.arange(20000))
    # a pixel of the digit shows its colour; the brightest pixel of each image lies on the digit
    flat = batch["image"].flatten(2)
    pixel = (flat.sum(1).argmax(1))
    redrawn_colours = ((flat[torch.arange(len(flat)), :, pixel] + 1) / 2).numpy()
    for colour, group in ((colours, s), (redrawn_colours, batch["s"].numpy())):
        inside = (PALETTE[group] > 0.2) & (PALETTE[group] < 0.8)
        deviation = (colour - PALETTE[group])[inside]
        assert deviation.var() == pytest.approx(sigma, rel=0.06)
        assert abs(deviation.mean()) < 0.1 * np.sqrt(sigma)


def test_sigma_kind_std_keeps_sigma_a_standard_deviation_and_unknown_kinds_are_refused():
    variance = cmnist("test", sigma=0.05, sigma_kind="variance").arrays["colour"].numpy()
    std = cmnist("test", sigma=0.05, sigma_kind="std").arrays["colour"].numpy()
    s = cmnist("test").labels["s"]
    inside = (PALETTE[s] > 0.2) & (PALETTE[s] < 0.8)
    assert (std - PALETTE[s])[inside].std() == pytest.approx(0.05, rel=0.05)
    assert (variance - PALETTE[s])[inside].std() == pytest.approx(0.05 ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="Data/sigma_kind"):
        cmnist("test", sigma=0.05, sigma_kind="var")


def test_redraw_gives_new_s_and_colours_on_every_access_to_pretrain_only():
    torch.manual_seed(1)
    pretrain = cmnist("pretrain", subset=500, sigma=0.01, sigma_kind="variance", redraw=True)
    first, second = pretrain.get_batch(np.arange(500)), pretrain.get_batch(np.arange(500))
    assert torch.equal(first["y"], second["y"])
    assert (first["s"] != second["s"]).float().mean() > 0.8  # 0.9 expected for s ~ U{0..9}
    digit = pretrain.arrays["digit"][:500]
    assert torch.equal(first["image"][:, 0, 2:30, 2:30] > -1, digit & (first["image"][:, 0, 2:30, 2:30] > -1))
    assert "s" not in pretrain.labels and pretrain[0]["s"] in range(10)
    for split in ("biased", "test"):  # the splits a second stage reads stay fixed, labels included
        data = cmnist(split, subset=50, sigma=0.01, sigma_kind="variance", redraw=True)
        assert torch.equal(data.get_batch(np.arange(50))["image"], data.get_batch(np.arange(50))["image"])
        assert "s" in data.labels


def test_same_seed_same_colours_other_seed_other_colours():
    first, again, other = (cmnist("test", sigma=0.03, seed=seed).arrays["colour"] for seed in (0, 0, 1))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fixture = write_celeba(root / "celeba", n=90, seed=3)
    return root, fixture


def celeba(root, split, eta):
    return CelebANullSample(split, config={"Data": {"data_root": str(root), "eta": eta, "image_size": 16}})


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_celeba_splits_and_the_eta_bias(celeba_root, eta):
    root, fixture = celeba_root
    male = fixture.attributes[:, 20]
    smiling = fixture.attributes[:, 31]
    parts = {split: celeba(root, split, eta) for split in ("pretrain", "test", "biased")}
    assert len(parts["pretrain"]) == 36 and len(parts["test"]) == 18  # 60% of 90, split 2 : 1
    indices = {k: set(v.indices.tolist()) for k, v in parts.items()}
    assert not (indices["pretrain"] & indices["test"] or indices["biased"] & (indices["pretrain"] | indices["test"]))
    pool = set(range(90)) - indices["pretrain"] - indices["test"]
    wanted = {i for i in pool if (male[i] != smiling[i]) == (eta == 1.0)}
    assert indices["biased"] == wanted
    for data in parts.values():
        assert np.array_equal(data.labels["s"], male[data.indices])
        assert np.array_equal(data.labels["y"], smiling[data.indices])
    example = parts["test"][0]
    assert example["image"].shape == (3, 16, 16) and example["y"] == smiling[parts["test"].indices[0]]
