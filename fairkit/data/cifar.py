"""CIFAR-10 from the python version of its release: ``<root>/cifar-10-batches-py/`` with the pickled batches
data_batch_1 ... data_batch_5 and test_batch (dicts with b"data": uint8 (N, 3072), rows R, G, B planes of 32x32,
and b"labels": N ints)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from fairkit.data.errors import CorruptDataError, DatasetNotFoundError
from fairkit.data.images import UInt8ImageDataset, data_root

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_SHAPE = (3, 32, 32)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a batch file cannot run code when loaded."""
    allowed = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
               ("_codecs", "encode")}  # protocol 2 pickles bytes through _codecs.encode
    renamed_modules = {"numpy.core.multiarray": "numpy._core.multiarray",  # pickles written by numpy < 2
                       "numpy.core.numeric": "numpy._core.numeric"}

    def find_class(self, module, name):
        module = self.renamed_modules.get(module, module)
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")
        return super().find_class(module, name)


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


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    try:
        with open(path, "rb") as f:
            batch = NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise CorruptDataError(f"{path} is truncated or not a CIFAR-10 python batch ({error}); replace it from "
                               f"{CIFAR10_URL}") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise CorruptDataError(f"{path} is not a CIFAR-10 python batch: expected a dict with b'data' and "
                               f"b'labels', found {keys}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE):
        raise CorruptDataError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max() < 10):
        raise CorruptDataError(f"{path}: b'labels' must hold {len(data)} classes in 0..9, got shape "
                               f"{labels.shape}")
    return data.reshape((-1,) + IMAGE_SHAPE), labels


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
