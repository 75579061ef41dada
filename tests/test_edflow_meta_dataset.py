"""edflow 0.4's MetaDataset: memory-mapped labels named <key>[:loader]-*-<shape>-*-<dtype>.npy plus meta.yaml."""
import numpy as np
import pytest
import yaml
from PIL import Image

from edflow.data.believers.meta import MetaDataset, store_label_mmap
from edflow.data.dataset import DataError, DatasetNotFoundError


def make_folder(root, n=3, meta=None):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, 4, 5, 3), dtype=np.uint8)
    for i in range(n):
        Image.fromarray(pixels[i]).save(root / "images" / f"{i}.png")
    labels = root / "labels"
    store_label_mmap(np.array([f"images/{i}.png" for i in range(n)]), str(labels), "image:image")
    store_label_mmap(np.arange(n, dtype=np.int64) % 2, str(labels), "class")
    store_label_mmap(rng.normal(size=(n, 17, 3)).astype(np.float32), str(labels / "pose"), "keypoints")
    (root / "meta.yaml").write_text(yaml.safe_dump(meta or {}))
    return pixels


def test_labels_are_memory_maps_and_the_image_loader_reads_the_paths(tmp_path):
    pixels = make_folder(tmp_path, meta={"description": "three images",
                                          "loader_kwargs": {"image": {"support": "-1->1", "root": str(tmp_path)}},
                                          "loaders": {"class": "category"}})
    dataset = MetaDataset(str(tmp_path))
    dataset.loader_kwargs["class"] = {"categories": ["even", "odd"]}
    assert len(dataset) == 3 and dataset.description == "three images"
    assert set(dataset.labels) == {"image_", "class_", "pose/keypoints"}
    assert isinstance(dataset.labels["class_"], np.memmap) and dataset.labels["pose/keypoints"].shape == (3, 17, 3)
    example = dataset[1]
    np.testing.assert_allclose(example["image"], pixels[1] / 255.0 * 2 - 1, atol=1e-6)
    assert example["image"].dtype == np.float32 and example["class"] == "odd"
    assert example["image_"] == "images/1.png"  # the raw label stays, as in edflow


def test_default_support_keeps_uint8(tmp_path):
    pixels = make_folder(tmp_path, meta={"loader_kwargs": {"image": {"root": str(tmp_path)}}})
    np.testing.assert_array_equal(MetaDataset(str(tmp_path))[2]["image"], pixels[2])


def test_a_folder_without_meta_yaml_says_what_it_needs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="meta.yaml and a labels/ folder"):
        MetaDataset(str(tmp_path))


def test_labels_of_different_lengths_are_refused(tmp_path):
    make_folder(tmp_path)
    store_label_mmap(np.zeros(5), str(tmp_path / "labels"), "extra")
    with pytest.raises(DataError, match="differ in length"):
        MetaDataset(str(tmp_path))


def test_a_loader_for_a_missing_label_is_refused(tmp_path):
    make_folder(tmp_path, meta={"loaders": {"depth": "np"}})
    with pytest.raises(DataError, match="depth"):
        MetaDataset(str(tmp_path))
