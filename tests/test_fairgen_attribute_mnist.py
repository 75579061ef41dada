"""Attribute MNIST (fairkit.data.attribute_mnist): the bias settings' group shares, the reference set's size,
disjointness, the rendered colours, and the correlated / balanced sets."""
import numpy as np
import pytest
import torch

from fairkit.data import load_mnist
from fairkit.data import attribute_mnist as am


@pytest.fixture(scope="module")
def mnist_train():
    return load_mnist("train")


def shares(values, n):
    return np.bincount(values, minlength=n) / len(values)


@pytest.mark.parametrize("setting, expected", [("90_10", [0.9, 0.1]), ("80_20", [0.8, 0.2]),
                                               ("multi", [0.437, 0.415, 0.063, 0.085])])
def test_biased_set_has_the_settings_group_shares(setting, expected):
    biased, reference = am.make_biased_and_reference(setting, perc=0.5, size=4000, seed=1)
    np.testing.assert_allclose(shares(biased.labels["group"], len(expected)), expected, atol=1 / 4000)
    names = am.bias_attributes_for(setting)
    # the group label is the bias attributes read as a binary number
    np.testing.assert_array_equal(am.group_index(biased.labels["attributes"], names), biased.labels["group"])
    assert (biased.labels["reference"] == 0).all() and (reference.labels["reference"] == 1).all()


@pytest.mark.parametrize("perc", am.REFERENCE_PERCS)
def test_reference_set_is_balanced_with_size_balanced_over_groups_times_perc(perc):
    _, reference = am.make_biased_and_reference("90_10", perc=perc, size=2000, balanced_size=3000)
    assert np.bincount(reference.labels["group"]).tolist() == [int(3000 / 2 * perc)] * 2
    _, multi_reference = am.make_biased_and_reference("multi", perc=perc, size=2000)
    assert np.bincount(multi_reference.labels["group"]).tolist() == [int(2000 / 4 * perc)] * 4


def test_sets_share_no_digit_and_pools_are_disjoint():
    biased, reference = am.make_biased_and_reference("80_20", perc=1.0, size=6000)
    drawn = np.concatenate([biased.labels["mnist_index"], reference.labels["mnist_index"]])
    assert len(np.unique(drawn)) == len(drawn)
    validation = am.make_balanced("validation")
    assert not set(validation.labels["mnist_index"]) & set(drawn)
    assert len(validation) <= am.VALIDATION_SIZE


def test_images_are_the_mnist_digits_drawn_in_their_colour(mnist_train):
    biased, _ = am.make_biased_and_reference("90_10", size=500, seed=3)
    indices = np.arange(0, 500, 7)
    batch = biased.get_batch(indices)
    images, attributes = batch["image"], batch["attributes"].numpy()
    assert images.shape == (len(indices), 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    grey, digits = mnist_train
    source = batch["mnist_index"].numpy()
    np.testing.assert_array_equal(batch["class"].numpy(), digits[source])
    np.testing.assert_array_equal(attributes[:, 1], digits[source] >= 5)
    ink = torch.as_tensor(grey[source]).float() / 255.0
    for channel in range(3):
        expected = ink * am.INK_COLOURS[attributes[:, 0], channel][:, None, None] * 2 - 1
        torch.testing.assert_close(images[:, channel, 2:30, 2:30], expected)
    assert (images[:, :, :2] == -1).all()  # the 2 px padding is black
    red, green = images[:, 0] + 1, images[:, 1] + 1  # in [0, 2]
    is_red = attributes[:, 0] == 1
    assert (red[is_red].sum((1, 2)) > green[is_red].sum((1, 2))).all()
    assert (green[~is_red].sum((1, 2)) > red[~is_red].sum((1, 2))).all()


@pytest.mark.parametrize("spread", [0.5, 0.9])
def test_colour_spread_mixes_each_ink_within_its_colours_half_and_keeps_it(mnist_train, spread):
    biased, _ = am.make_biased_and_reference("80_20", size=600, seed=2, colour_spread=spread)
    indices = np.arange(0, 600, 3)
    batch = biased.get_batch(indices)
    images, colours = batch["image"], batch["attributes"][:, 0]
    grey, _ = mnist_train
    ink = torch.as_tensor(grey[batch["mnist_index"].numpy()]).float() / 255.0
    # recover u per image from the brightest ink pixel: image = ink ((1 - u) green + u red) 2 - 1
    brightest = ink.flatten(1).argmax(1)
    pixel = images[:, :, 2:30, 2:30].flatten(2)[torch.arange(len(indices)), :, brightest]  # (B, 3)
    rgb = (pixel + 1) / 2 / ink.flatten(1).max(1).values[:, None]
    green, red = am.INK_COLOURS
    u = ((rgb - green) @ (red - green)) / ((red - green) @ (red - green))
    torch.testing.assert_close(rgb, (1 - u[:, None]) * green + u[:, None] * red, atol=1e-5, rtol=0)
    assert (u[colours == 0] >= -1e-5).all() and (u[colours == 0] <= spread / 2 + 1e-5).all()
    assert (u[colours == 1] >= 1 - spread / 2 - 1e-5).all() and (u[colours == 1] <= 1 + 1e-5).all()
    assert u[colours == 0].std() > spread / 10  # spread over the range, not one ink
    torch.testing.assert_close(biased.get_batch(indices[::-1])["image"], images.flip(0))  # a digit keeps its ink
    plain, _ = am.make_biased_and_reference("80_20", size=600, seed=2)
    assert not torch.equal(plain.get_batch(indices)["image"], images)
    with pytest.raises(ValueError, match="colour_spread"):
        am.make_biased_and_reference("80_20", size=600, colour_spread=1.0)
    correlated = [am.CorrelatedAttributeMNIST("validation", 64, colour_spread=s).get_batch(range(64))["image"]
                  for s in (0.0, spread)]
    assert not torch.equal(*correlated)


@pytest.mark.parametrize("correlation", [0.0, 0.6, -0.8])
def test_correlated_set_has_balanced_attributes_with_the_given_correlation(correlation):
    data = am.make_correlated("train", size=4000, target="digit_group", protected="colour", correlation=correlation)
    attributes = data.labels["attributes"]
    np.testing.assert_allclose(attributes.mean(0), [0.5, 0.5])
    assert np.corrcoef(attributes.T)[0, 1] == pytest.approx(correlation, abs=1e-9)


def test_balanced_set_fills_every_colour_and_digit_group_cell_equally():
    data = am.make_balanced("test", size=2000)
    cells = am.group_index(data.labels["attributes"], am.ATTRIBUTES)
    assert np.bincount(cells).tolist() == [500] * 4
    largest = am.make_balanced("test")
    assert len(largest) > 9000


def test_draws_are_seeded():
    first, _ = am.make_biased_and_reference("90_10", size=300, seed=5)
    again, _ = am.make_biased_and_reference("90_10", size=300, seed=5)
    other, _ = am.make_biased_and_reference("90_10", size=300, seed=6)
    np.testing.assert_array_equal(first.labels["mnist_index"], again.labels["mnist_index"])
    assert not np.array_equal(first.labels["mnist_index"], other.labels["mnist_index"])


def test_config_classes_match_the_functions():
    both = am.BiasedAttributeMNIST(part="both", setting="multi", perc=0.25, size=800, seed=2)
    biased, reference = am.make_biased_and_reference("multi", 0.25, 800, seed=2)
    np.testing.assert_array_equal(both.labels["mnist_index"], np.concatenate(
        [reference.labels["mnist_index"], biased.labels["mnist_index"]]))
    correlated = am.CorrelatedAttributeMNIST(pool="validation", size=400, correlation=0.5, seed=4)
    assert np.corrcoef(correlated.labels["attributes"].T)[0, 1] == pytest.approx(0.5)


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match="bias setting"):
        am.make_biased_and_reference("70_30")
    with pytest.raises(ValueError, match="perc"):
        am.make_biased_and_reference("90_10", perc=1.5)
    with pytest.raises(ValueError, match="smaller size"):
        am.make_biased_and_reference("90_10", size=60000)
    with pytest.raises(ValueError, match="unknown attribute"):
        am.make_correlated(target="shape")
    with pytest.raises(ValueError, match="correlation"):
        am.make_correlated(correlation=1.5)
    with pytest.raises(ValueError, match="2 distinct"):
        am.make_biased_and_reference("multi", bias_attributes=("colour", "colour"))


def test_split_counts_sum_to_the_size():
    counts = am.split_counts(1001, [0.437, 0.415, 0.063, 0.085])
    assert counts.sum() == 1001 and np.abs(counts - 1001 * np.array([0.437, 0.415, 0.063, 0.085])).max() < 1
