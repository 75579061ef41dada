"""CIFAR-10 from the python version of its release: ``<root>/cifar-10-batches-py/`` with the pickled batches
data_batch_1 ... data_batch_5 and test_batch (dicts with b"data": uint8 (N, 3072), rows R, G, B planes of 32x32,
and b"labels": N ints)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edflow.datasets.cifar import (CIFAR10_BATCHES, CIFAR10_CLASSES, CIFAR10_FOLDER, CIFAR10_URL,  # noqa: F401
                                   read_cifar_batch)
from fairkit.data.errors import DatasetNotFoundError
from fairkit.data.images import UInt8ImageDataset, data_root



def cifar10_dir(root: str | os.PathLike | None = None) -> Path:
    """``<root>/cifar-10-batches-py``; ``root`` may also name that folder itself."""
    root = data_root(root)
    return root if root.name == CIFAR10_FOLDER else root / CIFAR10_FOLDER


def check_split(split: str) -> None:
    if split not in CIFAR10_BATCHES:
        raise ValueError(f"split={split!r} is not one of {tuple(CIFAR10_BATCHES)}")


def missing_cifar10_error(folder: Path, missing: list[str]) -> DatasetNotFoundError:
    archive = folder.parent / Path(CIFAR10_URL).name
    unpack = (f"{archive} is there but not unpacked: run `tar xzf {archive} -C {folder.parent}`"
              if archive.is_file() else
              f"download the python version of CIFAR-10 ({CIFAR10_URL}) and unpack it with "
              f"`tar xzf cifar-10-python.tar.gz -C {folder.parent}`")
    return DatasetNotFoundError(
        f"CIFAR-10 was not found: {', '.join(missing)} missing in {folder}/. Expected the python version of "
        f"CIFAR-10 (not the binary or MATLAB one) as {folder}/ holding data_batch_1 ... data_batch_5 and "
        f"test_batch; {unpack} (or pass root= / set $FAIRKIT_DATA to the folder that contains {CIFAR10_FOLDER}/).")


def load_cifar10(split: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's ``split`` ("train" | "test"): images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    check_split(split)
    folder = cifar10_dir(root)
    paths = [folder / name for name in CIFAR10_BATCHES[split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise missing_cifar10_error(folder, missing)
    images, labels = zip(*(read_cifar_batch(p) for p in paths))
    return np.concatenate(images), np.concatenate(labels)


class CIFAR10(UInt8ImageDataset):
    """CIFAR-10: examples {"image": float32 (3, size, size) in [-1, 1], "class": int64}; options as for MNIST."""
    class_names = CIFAR10_CLASSES

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, size: int = 32,
                 resize: str = "bilinear", dequantize: bool = False, subset: int | None = None,
                 subset_seed: int | None = None):
        images, labels = load_cifar10(split, root)
        self.split, self.folder = split, cifar10_dir(root)
        super().__init__(images, {"class": labels}, size=size, resize=resize, dequantize=dequantize,
                         subset=subset, subset_seed=subset_seed)
