"""Tiny datasets in the standard on-disk formats, written with known content, for tests.

Each writer returns what it wrote, so a test can compare a loader's output with the truth.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edflow.datasets.idx import write_idx
from fairkit.data.celeba import ATTRIBUTE_FILE, CELEBA_ATTRIBUTES, IMAGE_FOLDER, PARTITION_FILE
from fairkit.data.cifar import CIFAR10_BATCHES, CIFAR10_CLASSES, CIFAR10_FOLDER
from fairkit.data.mnist import SPLIT_SIZES, get_kind, idx_file_names

CELEBA_IMAGE_SIZE = (178, 218)  # width, height of img_align_celeba
CELEBA_FACE_SQUARE = 140  # side of the centred square drawn in a second colour


@dataclass
class CelebAFixture:
    root: Path
    filenames: list[str]
    attributes: np.ndarray  # int64 (n, 40) in {0, 1}
    partition: np.ndarray  # int64 (n,): 0 train, 1 valid, 2 test
    background: np.ndarray  # uint8 (n, 3): colour outside the centred square
    face: np.ndarray  # uint8 (n, 3): colour of the centred CELEBA_FACE_SQUARE square


@dataclass
class ArraysFixture:
    root: Path
    images: np.ndarray  # uint8, as the loader should return them
    labels: np.ndarray  # int64


def celeba_partition(n: int) -> np.ndarray:
    """Splits for n images in file order: the last ~1/6 test, the ~1/6 before it valid, at least one each."""
    held_out = max(1, n // 6)
    if n < 3:
        raise ValueError(f"a CelebA fixture needs at least 3 images (one per split), got n={n}")
    return np.array([0] * (n - 2 * held_out) + [1] * held_out + [2] * held_out, dtype=np.int64)


def write_celeba(root: str | os.PathLike, n: int = 12, seed: int = 0) -> CelebAFixture:
    """A CelebA folder under ``root``: n 178x218 JPEGs (one colour with a centred 140x140 square of another),
    random attributes and a partition file, in the official formats."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    filenames = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    attributes = rng.integers(0, 2, size=(n, len(CELEBA_ATTRIBUTES)), dtype=np.int64)
    partition = celeba_partition(n)
    background, face = rng.integers(0, 256, size=(2, n, 3), dtype=np.uint8)
    (root / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    width, height = CELEBA_IMAGE_SIZE
    top, left = (height - CELEBA_FACE_SQUARE) // 2, (width - CELEBA_FACE_SQUARE) // 2
    for name, outer, inner in zip(filenames, background, face):
        pixels = np.broadcast_to(outer, (height, width, 3)).copy()
        pixels[top:top + CELEBA_FACE_SQUARE, left:left + CELEBA_FACE_SQUARE] = inner
        Image.fromarray(pixels).save(root / IMAGE_FOLDER / name, quality=95)
    rows = [f"{name} " + " ".join(f"{2 * v - 1:2d}" for v in row) for name, row in zip(filenames, attributes)]
    (root / ATTRIBUTE_FILE).write_text("\n".join([str(n), " ".join(CELEBA_ATTRIBUTES)] + rows) + "\n")
    (root / PARTITION_FILE).write_text("".join(f"{name} {p}\n" for name, p in zip(filenames, partition)))
    return CelebAFixture(root, filenames, attributes, partition, background, face)


def write_cifar10(root: str | os.PathLike, n_per_batch: int = 4, seed: int = 0) -> dict[str, ArraysFixture]:
    """``root/cifar-10-batches-py/`` with random batches of ``n_per_batch`` images in the python-version format.
    Returns the truth per split, images uint8 (N, 3, 32, 32)."""
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for split, batch_names in CIFAR10_BATCHES.items():
        images, labels = [], []
        for name in batch_names:
            pixels = rng.integers(0, 256, size=(n_per_batch, 32, 32, 3), dtype=np.uint8)  # height, width, RGB
            classes = rng.integers(0, len(CIFAR10_CLASSES), size=n_per_batch)
            batch = {b"batch_label": name.encode(), b"labels": [int(c) for c in classes],
                     b"data": pixels.transpose(0, 3, 1, 2).reshape(n_per_batch, -1),  # rows of R, G, B planes
                     b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)]}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
            images.append(pixels.transpose(0, 3, 1, 2))
            labels.append(classes.astype(np.int64))
        truth[split] = ArraysFixture(Path(root), np.concatenate(images), np.concatenate(labels))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return truth


def write_mnist_idx(root: str | os.PathLike, kind: str = "mnist", split: str = "test", seed: int = 0,
                    compress: bool = False) -> ArraysFixture:
    """A full-size split (60000 or 10000 images, as the loader demands) of random sparse images and labels in
    torchvision's layout, ``root/MNIST/raw/`` or ``root/FashionMNIST/raw/``; gzipped if ``compress``."""
    rng = np.random.default_rng(seed)
    n = SPLIT_SIZES[split]
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)  # sparse, so gzip stays quick
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    folder = Path(root) / get_kind(kind).folder / "raw"
    suffix = ".gz" if compress else ""
    image_name, label_name = idx_file_names(split)
    write_idx(folder / f"{image_name}{suffix}", images, compress=compress)
    write_idx(folder / f"{label_name}{suffix}", labels, compress=compress)
    return ArraysFixture(Path(root), images, labels.astype(np.int64))
