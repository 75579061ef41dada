"""fairgen's datasets: the GAN's union of reference and biased data, whole-batch access, the ratio validation set,
and the paper's CelebA construction on a tiny CelebA-format folder."""
import numpy as np
import pytest
import torch

from fairgen import data as fd
from fairkit.data.fixtures import write_celeba

SMALL = {"Data": {"size": 400, "perc": 0.25, "eval_size": 80, "seed": 3}}


def test_gan_training_set_is_the_reference_set_then_the_biased_set():
    union = fd.GANTrain(SMALL)
    reference, group = union.labels["reference"], union.labels["group"]
    assert len(union) == 400 + 2 * int(400 / 2 * 0.25)
    assert reference[:100].tolist() == [1] * 100 and reference[100:].tolist() == [0] * 400
    assert np.bincount(group[:100]).tolist() == [50, 50]
    assert np.bincount(group[100:]).tolist() == [360, 40]
    # the group is the colour for 90_10
    np.testing.assert_array_equal(group, union.labels["attributes"][:, 0])


def test_whole_batches_equal_single_examples():
    union = fd.GANTrain(SMALL)
    indices = np.array([450, 3, 120, 99, 100])
    batch = union.get_batch(indices)
    assert batch["index_"].tolist() == indices.tolist()
    for row, i in enumerate(indices):
        example = union[int(i)]
        np.testing.assert_array_equal(batch["image"][row].numpy(), example["image"])
        assert batch["reference"][row].item() == example["reference"] == union.labels["reference"][i]


def test_ratio_validation_holds_as_many_biased_as_reference_examples_in_mixed_order():
    validation = fd.RatioValidation(SMALL)
    reference = validation.labels["reference"]
    assert np.bincount(reference).tolist() == [80, 80]
    assert 0 < reference[:16].sum() < 16
    batch = validation.get_batch(np.arange(16))
    np.testing.assert_array_equal(batch["reference"].numpy(), reference[:16])
    biased_groups = validation.labels["group"][reference == 0]
    assert np.bincount(biased_groups).tolist() == [72, 8]


def test_balanced_sets_have_equal_groups_and_differ_between_validation_and_test():
    options = {"Data": {"setting": "multi", "eval_size": 200}}
    validation, test = fd.BalancedValidation(options), fd.BalancedTest(options)
    assert np.bincount(validation.labels["group"]).tolist() == [50] * 4
    assert np.bincount(test.labels["group"]).tolist() == [50] * 4
    training = fd.GANTrain({"Data": {"setting": "multi", "size": 400}})
    assert not set(validation.labels["mnist_index"]) & set(training.labels["mnist_index"])


def test_unquoted_yaml_settings_are_read_back():
    assert fd.data_options({"Data": {"setting": 9010}})["setting"] == "90_10"
    assert fd.data_options({"Data": {"setting": 8020}})["setting"] == "80_20"
    with pytest.raises(ValueError, match="bias setting"):
        fd.data_options({"Data": {"setting": "70_30"}})
    with pytest.raises(Exception, match="Data/sise|size"):
        fd.data_options({"Data": {"sise": 3}})


def test_draw_groups_takes_distinct_examples_and_says_when_a_group_runs_short():
    groups = np.array([0, 1, 0, 0, 1, 0, 1, 0])
    first, second = fd.draw_groups(groups, [[2, 1], [3, 2]], np.random.default_rng(0))
    drawn = np.concatenate(first + second)
    assert len(np.unique(drawn)) == len(drawn) == 8
    assert all((groups[chosen] == g).all() for part in (first, second) for g, chosen in enumerate(part))
    assert [len(c) for c in first + second] == [2, 1, 3, 2]
    with pytest.raises(ValueError, match="group 1 has only"):
        fd.draw_groups(groups, [[1, 4]], np.random.default_rng(0))
    with pytest.warns(UserWarning, match="allow_fewer"):
        (short,) = fd.draw_groups(groups, [[1, 4]], np.random.default_rng(0), allow_fewer=True)
    assert len(short[1]) == 3


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, write_celeba(root / "celeba", n=120, seed=0)


def test_celeba_split_follows_the_papers_construction(celeba_root):
    root, fixture = celeba_root
    config = {"Data": {"dataset": "celeba", "setting": "90_10", "perc": 0.5, "size": 20, "balanced_size": 16,
                       "image_size": 32, "data_root": str(root / "celeba")}}
    union = fd.GANTrain(config)
    reference, group = union.labels["reference"], union.labels["group"]
    male = union.labels["attributes"][:, list(fd.CELEBA_ATTRIBUTES).index("Male")]
    np.testing.assert_array_equal(group, male)
    assert np.bincount(group[reference == 1]).tolist() == [4, 4]   # 16 / 2 * 0.5 per gender
    assert np.bincount(group[reference == 0]).tolist() == [18, 2]  # 90 / 10 of 20
    chosen = union.datasets[0].indices.tolist() + union.datasets[1].indices.tolist()
    assert len(set(chosen)) == len(chosen)
    assert all(part.faces.split == "train" for part in union.datasets)
    assert (fixture.partition[[int(f[:6]) - 1 for f in union.datasets[0].faces.filenames]] == 0).all()
    example = union[0]
    assert example["image"].shape == (3, 32, 32) and example["reference"] == 1
    batch = fd.fetch_batch(union, np.array([0, 25]))
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["reference"].tolist() == [1, 0]


def test_data_options_are_parsed_once_into_a_frozen_record():
    import dataclasses

    options = fd.data_options({"Data": {"dataset": "celeba", "bias_attributes": ["Black_Hair", "Male"],
                                        "setting": "multi"}, "data_root": "faces"})
    assert options.bias_attributes == ("Black_Hair", "Male") and options["setting"] == "multi"
    assert options.data_root == "faces" and options.eval_size == fd.DATA_DEFAULTS["eval_size"]
    assert fd.bias_attributes(options) == ("Black_Hair", "Male") and fd.num_groups(options) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.size = 3
    with pytest.raises(KeyError):
        options["sise"]
