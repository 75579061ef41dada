"""The shared coloured-digit pieces (fairkit.data.coloured_digits) on tiny hand-made digits."""
import numpy as np
import pytest
import torch

from fairkit.data import coloured_digits as cd


def test_colourise_pads_then_multiplies_each_digit_by_its_own_colour():
    ink = torch.zeros(2, 28, 28)
    ink[0, 3, 4] = 1.0
    ink[1, 10, 10] = 0.5
    colours = torch.tensor([[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]])
    images = cd.colourise(ink, colours, size=32)
    assert images.shape == (2, 3, 32, 32)
    assert torch.equal(images[0, :, 5, 6], colours[0]) and torch.equal(images[1, :, 12, 12], 0.5 * colours[1])
    assert images.abs().sum() == pytest.approx(colours[0].sum() + 0.5 * colours[1].sum())


def test_resize_ink_pads_even_margins_and_resizes_odd_ones():
    ink = torch.ones(1, 1, 28, 28)
    assert torch.equal(cd.resize_ink(ink, size=32)[0, 0, :2], torch.zeros(2, 32))  # zero margin of 2 px
    assert cd.resize_ink(ink, size=31).shape == (1, 1, 31, 31) and cd.resize_ink(ink, size=31).min() > 0.9
    assert cd.resize_ink(ink, size=None) is ink


def test_background_colouring_keeps_ink_white():
    grey = np.zeros((1, 4, 4), np.uint8)
    grey[0, 1, 2] = 3
    coloured = cd.colourise_background(grey, cd.REBIAS_PALETTE[[4]])
    assert (coloured[0, :, 1, 2] == 255).all()
    assert (coloured[0, :, 0, 0] == cd.REBIAS_PALETTE[4]).all() and coloured.dtype == np.uint8


def test_sigma_is_a_std_or_a_variance_and_bad_values_are_named():
    assert cd.colour_noise_std(sigma=0.04, kind="std") == pytest.approx(0.04)
    assert cd.colour_noise_std(sigma=0.04, kind="variance") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="sigma_kind"):
        cd.colour_noise_std(sigma=0.04, kind="var")
    with pytest.raises(ValueError, match="Data/sigma=-1"):
        cd.colour_noise_std(sigma=-1, kind="std")


def test_noisy_colours_scatter_around_the_palette_and_stay_in_the_unit_cube():
    s = np.full(4000, 3)  # (0, 128, 0) / 255: the green channel is far from both clipping bounds
    colours = cd.noisy_colours(s, palette=cd.ETHICML_PALETTE, std=0.05, rng=cd.seeded_stream(seed=0, stream=1))
    assert colours.dtype == np.float32 and colours.min() >= 0 and colours.max() <= 1
    assert colours[:, 1].std() == pytest.approx(0.05, rel=0.1)
    assert colours[:, 1].mean() == pytest.approx(128 / 255, abs=0.005)


def test_both_bias_assignments_give_the_label_its_colour_at_rate_rho():
    labels = np.repeat(np.arange(10), 200)
    even = cd.even_bias_colours(labels, rho=0.9, rng=np.random.default_rng(0))
    order, official = cd.official_bias_colours(labels, rho=0.9, rng=np.random.RandomState(42))
    assert np.mean(even == labels) == pytest.approx(0.9)
    assert np.mean(official == labels[order]) == pytest.approx(0.9)
    assert sorted(order) == list(range(len(labels)))


def test_split_permutation_is_a_partition_fixed_by_the_stream():
    first, rest = cd.split_permutation(100, first=30, rng=cd.seeded_stream(seed=4, stream=0), sort=True)
    again, _ = cd.split_permutation(100, first=30, rng=cd.seeded_stream(seed=4, stream=0), sort=True)
    assert len(first) == 30 and np.array_equal(np.sort(np.concatenate([first, rest])), np.arange(100))
    assert np.array_equal(first, again) and np.all(np.diff(first) > 0)
