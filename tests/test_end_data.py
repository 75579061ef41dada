"""Biased MNIST: colour shares per digit, the colouring itself, and the splits built from real MNIST."""
from fractions import Fraction

import numpy as np
import pytest

from end.data import PALETTE, BiasedMNIST, assign_colours, colourise as colourize, holdout_split, official_colouring


def digits_with_counts(counts):
    return np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))


@pytest.mark.parametrize("rho", [0.999, 0.997, 0.99, 0.5, 0.1, 1.0])
def test_share_of_own_colour_is_rho_to_the_sample(rho):
    counts = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    digits = digits_with_counts(counts)
    colours = assign_colours(digits, rho, np.random.default_rng(1))
    for digit, n in enumerate(counts):
        own = int(np.sum(colours[digits == digit] == digit))
        assert own == int(Fraction(n) * Fraction(str(rho)))  # int(n * rho) in exact arithmetic
        assert abs(own / n - rho) < 1 / n


def test_remainder_is_spread_evenly_over_the_other_nine_colours():
    counts = np.full(10, 1000)
    digits = digits_with_counts(counts)
    colours = assign_colours(digits, 0.95, np.random.default_rng(2))  # 50 others per digit: 5 or 6 per colour
    for digit in range(10):
        others = np.bincount(colours[(digits == digit) & (colours != digit)], minlength=10)
        assert others[digit] == 0
        spread = np.delete(others, digit)
        assert spread.sum() == 50 and spread.max() - spread.min() <= 1


def test_rho_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        assign_colours(np.arange(10), 1.5, np.random.default_rng(0))


def test_digits_are_white_on_the_coloured_background():
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, 5:9, 10:12] = 200
    images[1, 14, 14] = 1  # faint ink still counts as digit
    coloured = colourize(images, np.array([3, 8]))
    assert coloured.shape == (2, 3, 28, 28) and coloured.dtype == np.uint8
    assert (coloured[0, :, 5:9, 10:12] == 255).all()
    assert (coloured[0, :, 0, 0] == PALETTE[3]).all() and (coloured[0, :, 27, 27] == PALETTE[3]).all()
    assert (coloured[1, :, 14, 14] == 255).all() and (coloured[1, :, 0, 0] == PALETTE[8]).all()
    assert (coloured[0].reshape(3, -1).T == PALETTE[3]).all(axis=1).sum() == 28 * 28 - 8


def test_holdout_is_disjoint_and_covers_everything():
    train, held = holdout_split(1000, 0.3, seed=4)
    assert len(held) == 300 and len(train) == 700
    assert len(np.union1d(train, held)) == 1000 and len(np.intersect1d(train, held)) == 0


@pytest.fixture(scope="module")
def splits(mnist_available):
    config = {"Data": {"protocol": "heldout", "rho": 0.99, "seed": 3}}
    return {split: BiasedMNIST(split, config=config) for split in
            ("train", "validation", "test_biased", "test_unbiased")}


def own_colour_share(dataset, digit):
    labels = dataset.labels
    return np.mean(labels["color"][labels["class"] == digit] == digit)


def test_splits_sizes_and_biases(splits):
    assert len(splits["train"]) == 42000 and len(splits["validation"]) == 18000
    assert len(splits["test_biased"]) == len(splits["test_unbiased"]) == 10000
    for digit in range(10):
        n = int(np.sum(splits["train"].labels["class"] == digit))
        assert abs(own_colour_share(splits["train"], digit) - 0.99) < 1 / n
        assert own_colour_share(splits["test_biased"], digit) == 1.0


@pytest.mark.parametrize("split", ["validation", "test_unbiased"])
def test_unbiased_splits_have_uniform_colours_for_every_digit(splits, split):
    labels = splits[split].labels
    for digit in range(10):
        counts = np.bincount(labels["color"][labels["class"] == digit], minlength=10)
        assert counts.max() - counts.min() <= 1  # as uniform as the digit's count allows


def test_validation_images_are_held_out_from_training(splits):
    train, validation = splits["train"].mnist_indices, splits["validation"].mnist_indices
    assert len(np.intersect1d(train, validation)) == 0
    assert len(np.union1d(train, validation)) == 60000


def test_examples_are_float_images_in_the_unit_range(splits):
    batch = splits["test_unbiased"].get_batch(np.arange(8))
    image = batch["image"]
    assert image.shape == (8, 3, 28, 28) and str(image.dtype) == "torch.float32"
    assert image.min() == -1.0 and image.max() == 1.0
    assert str(batch["class"].dtype) == str(batch["color"].dtype) == "torch.int64"
    example = splits["test_unbiased"][0]
    assert set(example) >= {"image", "class", "color"}


def test_subsets_and_the_rho_argument(mnist_available):
    config = {"Data": {"protocol": "heldout", "rho": 0.99, "train_subset": 3000, "eval_subset": 500}}
    train = BiasedMNIST("train", config=config)
    assert len(train) == 3000 and len(BiasedMNIST("test_unbiased", config=config)) == 500
    assert BiasedMNIST("train", rho=0.5, config=config).rho == 0.5
    with pytest.raises(ValueError, match="split"):
        BiasedMNIST("valid", config=config)
    with pytest.raises(ValueError, match="train_subset"):
        BiasedMNIST("train", config={"Data": {"train_subset": 10 ** 6}})


@pytest.mark.parametrize("rho", [0.997, 0.99, 1.0, 0.1])
def test_official_colouring_gives_chunks_of_the_ceiling_to_shuffled_other_colours(rho):
    counts = np.array([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])  # MNIST's training digits
    digits = digits_with_counts(counts)
    order, colours = official_colouring(digits, rho, np.random.RandomState(42))
    assert sorted(order) == list(range(len(digits)))  # every image once
    for digit, n in enumerate(counts):
        mine = colours[digits[order] == digit]
        aligned = int(n * rho)
        assert int(np.sum(mine == digit)) == aligned
        others = np.bincount(mine[mine != digit], minlength=10)
        chunk = int(np.ceil((n - aligned) / 9))
        sizes = sorted(others[others > 0], reverse=True)
        # full chunks of ceil(rest / 9), then what is left, over as few colours as that takes
        assert all(size == chunk for size in sizes[:-1]) and (not sizes or 0 < sizes[-1] <= chunk)
        assert sum(sizes) == n - aligned


def test_official_colouring_is_fixed_by_the_seed_and_changes_with_it():
    digits = digits_with_counts(np.full(10, 300))
    first = official_colouring(digits, 0.9, np.random.RandomState(42))
    again = official_colouring(digits, 0.9, np.random.RandomState(42))
    other = official_colouring(digits, 0.9, np.random.RandomState(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


@pytest.fixture(scope="module")
def official(mnist_available):
    config = {"Data": {"protocol": "official", "rho": 0.997}}
    return {split: BiasedMNIST(split, config=config) for split in ("train", "validation")}


def test_official_protocol_trains_on_every_image_and_validates_on_a_recoloured_30_percent(official):
    train, validation = official["train"], official["validation"]
    assert len(train) == 60000 and len(validation) == 18000
    assert sorted(train.mnist_indices) == list(range(60000))
    assert len(np.unique(validation.mnist_indices)) == 18000  # a subset of the same images, no repeats
    labels = validation.labels
    conflicting = np.mean(labels["color"] != labels["class"])
    assert 0.85 < conflicting < 0.95  # recoloured at rho 0.1: about 90% off the digit's own colour
    own = np.mean(train.labels["color"] == train.labels["class"])
    assert own == pytest.approx(0.997, abs=1e-3)


def test_unknown_protocol_is_refused(mnist_available):
    with pytest.raises(ValueError, match="heldout"):
        BiasedMNIST("train", config={"Data": {"protocol": "held-out"}})
