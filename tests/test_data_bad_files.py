"""Truncated, corrupt and missing data files end in errors that name the file and say how to fix it."""
import gzip

import numpy as np
import pytest

from fairkit.data import CelebA, CorruptDataError, DatasetNotFoundError, load_mnist, read_idx, write_idx
from fairkit.data.fixtures import write_mnist_idx

IMAGES = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)  # an IDX file of 4 + 3 * 4 + 50 = 66 bytes


@pytest.fixture
def raw_idx(tmp_path):
    return write_idx(tmp_path / "images-idx3-ubyte", IMAGES).read_bytes()


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("name, corrupt, message", [
    ("empty", lambda raw: b"", r"is truncated: it holds 0 bytes, not even an IDX header"),
    ("cut in header", lambda raw: raw[:6], r"is truncated inside its header"),
    ("cut in data", lambda raw: raw[:-1], r"is truncated: its header promises shape \(2, 5, 5\) \(66 bytes"),
    ("too long", lambda raw: raw + b"\0\0", r"is longer than its header says: .* holds 68 bytes"),
    ("text", lambda raw: b"hello, not an idx file", r"is not an IDX file \(magic number 0x68656c6c\)"),
    ("gz cut", lambda raw: gzip.compress(raw)[:-5], r"is a truncated or corrupt gzip file \(Compressed file ended"),
    ("gz flipped byte", lambda raw: flip_byte(gzip.compress(raw), 20), r"is a truncated or corrupt gzip file"),
    ("gz trailing bytes", lambda raw: gzip.compress(raw) + b"junk", r"is a truncated or corrupt gzip file"),
    ("gz of text", lambda raw: gzip.compress(b"x" * 80), r"is not an IDX file"),
    ("gz cut in data", lambda raw: gzip.compress(raw[:-10]), r"is truncated: its header promises"),
])
def test_bad_idx_files_are_named_with_the_fix(tmp_path, raw_idx, name, corrupt, message):
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(corrupt(raw_idx))
    with pytest.raises(CorruptDataError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)
    assert "provide the file again" in str(error.value) or "expected MNIST-style files" in str(error.value)


def test_good_idx_files_read_back_exactly(tmp_path, raw_idx):
    (tmp_path / "plain").write_bytes(raw_idx)
    (tmp_path / "zipped").write_bytes(gzip.compress(raw_idx))
    for path in (tmp_path / "plain", tmp_path / "zipped"):
        np.testing.assert_array_equal(read_idx(path), IMAGES)


def test_corrupt_gzip_in_an_mnist_folder_is_named_by_the_loader(tmp_path):
    write_mnist_idx(tmp_path, "mnist", "test", seed=0)
    raw = tmp_path / "MNIST" / "raw"
    images = raw / "t10k-images-idx3-ubyte"
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(flip_byte(gzip.compress(images.read_bytes()), 1000))
    images.unlink()
    with pytest.raises(CorruptDataError, match=r"t10k-images-idx3-ubyte\.gz is a truncated or corrupt gzip file"):
        load_mnist("test", root=tmp_path, download=False)


# ---------------------------------------------------------------- CelebA
@pytest.mark.parametrize("missing", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_celeba_without_its_label_files_names_them_and_the_layout(celeba_copy, missing):
    (celeba_copy / missing).unlink()
    with pytest.raises(DatasetNotFoundError) as error:
        CelebA("train", root=celeba_copy)
    first_line = str(error.value).splitlines()[0]
    assert first_line == f"CelebA is missing or incomplete in {celeba_copy}: missing {missing}."
    assert f"{celeba_copy}/{missing}" in str(error.value) and "Pass root=" in str(error.value)


@pytest.mark.parametrize("file, content, message", [
    ("list_attr_celeba.txt", "", r"list_attr_celeba\.txt should start with the number of images .* replace it with "
                                 r"the original list_attr_celeba\.txt"),
    ("list_attr_celeba.txt", "six\nSmiling\n", r"it starts with \['six', 'Smiling'\]"),
    ("list_eval_partition.txt", "000001.jpg 0\n000002.jpg train\n",
     r"list_eval_partition\.txt, line 2: expected a file name and a split 0/1/2, got '000002\.jpg train'; replace"),
])
def test_celeba_label_files_that_cannot_be_read(celeba_copy, file, content, message):
    (celeba_copy / file).write_text(content)
    with pytest.raises(CorruptDataError, match=message):
        CelebA("train", root=celeba_copy)


@pytest.mark.parametrize("content", [b"", b"not a jpeg at all", b"\xff\xd8\xff\xe0" + b"\0" * 40])
def test_celeba_image_that_is_not_an_image_is_named_when_read(celeba_copy, content):
    (celeba_copy / "img_align_celeba" / "000001.jpg").write_bytes(content)
    data = CelebA("train", root=celeba_copy)  # labels load; images are decoded one at a time
    assert data[1]["image"].shape == (3, 64, 64)
    with pytest.raises(CorruptDataError, match=r"img_align_celeba/000001\.jpg could not be decoded .* replace it "
                                               r"from img_align_celeba\.zip"):
        data[0]
