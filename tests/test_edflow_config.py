import pytest

from edflow.config import (ConfigError, apply_overrides, check_runner_keys, deep_merge, parse_overrides, section)
from edflow.util import KeyNotFoundError, get_obj_from_str, retrieve


def test_deep_merge_overrides_nested_keys_and_keeps_siblings():
    base = {"Model": {"z_dim": 64, "ch": 32}, "batch_size": 8}
    merged = deep_merge(base, {"Model": {"z_dim": 16}, "seed": 1})
    assert merged == {"Model": {"z_dim": 16, "ch": 32}, "batch_size": 8, "seed": 1}
    assert base["Model"]["z_dim"] == 64  # inputs are not modified


def test_later_file_replaces_a_non_mapping_value():
    assert deep_merge({"a": {"b": 1}}, {"a": 3}) == {"a": 3}
    assert deep_merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


@pytest.mark.parametrize("args, expected", [
    (["--Model/z_dim", "32"], [("Model/z_dim", 32, False)]),
    (["Model.z_dim=32"], [("Model/z_dim", 32, False)]),
    (["lr=1e-3"], [("lr", 1e-3, False)]),
    (["Model.sizes=[1, 2]"], [("Model/sizes", [1, 2], False)]),
    (["+Model.new=true"], [("Model/new", True, True)]),
    (["name=abc"], [("name", "abc", False)]),
])
def test_overrides_are_typed_like_yaml(args, expected):
    assert parse_overrides(args) == expected


def test_overrides_apply_to_known_keys():
    config = {"Model": {"z_dim": 64}, "batch_size": 8}
    out = apply_overrides(config, parse_overrides(["Model.z_dim=32", "--batch_size", "4", "+Model.extra=1"]))
    assert out == {"Model": {"z_dim": 32, "extra": 1}, "batch_size": 4}


def test_misspelt_override_names_the_nearest_key():
    with pytest.raises(ConfigError, match=r"Model/zdim.*Did you mean 'Model/z_dim'"):
        apply_overrides({"Model": {"z_dim": 64}}, parse_overrides(["Model.zdim=3"]))


def test_misspelt_runner_key_in_a_file_names_the_nearest_key():
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        check_runner_keys({"batchsize": 3})
    check_runner_keys({"Model": {}, "Loss": {}, "batch_size": 3})  # method sections are fine


def test_section_fills_defaults_and_rejects_unknown_keys():
    assert section({"Model": {"a": 2}}, "Model", {"a": 1, "b": 2}) == {"a": 2, "b": 2}
    with pytest.raises(ConfigError, match="Did you mean 'Model/alpha'"):
        section({"Model": {"alpah": 2}}, "Model", {"alpha": 1})
    with pytest.raises(ConfigError, match="needs the key 'beta'"):
        section({"Model": {}}, "Model", {}, required=["beta"])


def test_retrieve_and_get_obj_from_str():
    config = {"a": {"b": [10, {"c": 3}]}}
    assert retrieve(config, "a/b/1/c") == 3
    assert retrieve(config, "a/x", default=None) is None
    with pytest.raises(KeyNotFoundError, match="a/x"):
        retrieve(config, "a/x/y")
    assert get_obj_from_str("edflow.config.deep_merge") is deep_merge
    with pytest.raises(ImportError, match="has no attribute 'nope'"):
        get_obj_from_str("edflow.config.nope")


def test_array_dataset_examples_and_batches_agree():
    import numpy as np
    import torch

    from edflow.data.dataset import ArrayDataset, ConcatenatedDataset, SubDataset

    data = ArrayDataset({"x": torch.arange(10.0).view(5, 2), "y": torch.arange(5)})
    assert [int(data[i]["y"]) for i in range(5)] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(data[3]["x"], [6.0, 7.0])
    batch = data.get_batch([4, 1])
    assert batch["y"].tolist() == [4, 1] and batch["x"][0].tolist() == [8.0, 9.0]
    sub = SubDataset(data, [3, 0])
    assert [int(sub[i]["y"]) for i in range(2)] == [3, 0] and sub.labels["y"].tolist() == [3, 0]
    both = ConcatenatedDataset(data, sub)
    assert len(both) == 7 and int(both[6]["y"]) == 0 and both.labels["y"].tolist() == [0, 1, 2, 3, 4, 3, 0]


def test_concatenated_dataset_in_an_order_gives_the_same_examples_one_by_one_and_in_batches():
    import numpy as np
    import pytest
    import torch

    from edflow.data.dataset import ArrayDataset, ConcatenatedDataset

    first = ArrayDataset({"image": torch.zeros(3, 1, 2, 2), "y": torch.tensor([0, 1, 2])})
    second = ArrayDataset({"image": torch.ones(2, 1, 2, 2), "y": torch.tensor([10, 11])})
    order = np.array([4, 0, 3, 1, 2])
    both = ConcatenatedDataset(first, second, order=order)
    assert both.labels["y"].tolist() == [11, 0, 10, 1, 2] and "image" not in both.labels
    batch = both.get_batch([2, 0, 1])
    assert batch["y"].tolist() == [10, 11, 0] and batch["index_"].tolist() == [2, 0, 1]
    assert batch["image"][:, 0, 0, 0].tolist() == [1.0, 1.0, 0.0]
    assert [int(both[i]["y"]) for i in range(5)] == both.labels["y"].tolist()
    with pytest.raises(ValueError, match="permutation"):
        ConcatenatedDataset(first, second, order=[0, 0, 1, 2, 3])
