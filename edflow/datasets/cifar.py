"""CIFAR-10 in the python version of its release (``cifar-10-batches-py/`` with the pickled batches data_batch_1
... data_batch_5 and test_batch: dicts with b"data", uint8 (N, 3072) as R, G, B planes of 32x32, and b"labels"),
and edflow 0.4's ``CIFAR10`` reading it from ``$EDDATA_CACHE/CIFAR10/cifar-10-batches-py/``.

edflow's examples: ``{"image": float32 (32, 32, 3) in [-1, 1], "class": int64, "filename": str}``."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edflow.data.dataset import CorruptDataError, DatasetMixin
from edflow.datasets.utils import config_split, get_root, require

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


def read_cifar_batch(path: Path, *, with_filenames: bool = False) -> tuple[np.ndarray, ...]:
    """One batch file: images uint8 (N, 3, 32, 32) and labels int64 (N,) (and its file names, str (N,))."""
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
    if not with_filenames:
        return data.reshape((-1,) + IMAGE_SHAPE), labels
    names = batch.get(b"filenames") or [b""] * len(labels)
    return data.reshape((-1,) + IMAGE_SHAPE), labels, np.array([n.decode() if isinstance(n, bytes) else str(n)
                                                                for n in names])


class CIFAR10(DatasetMixin):
    NAME = "CIFAR10"

    def __init__(self, config=None):
        self.config = config or {}
        self.root = get_root(self.NAME)
        split = self._get_split()
        if split not in CIFAR10_BATCHES:
            raise ValueError(f"CIFAR10 split must be train or test, got {split!r}")
        folder = self.root / CIFAR10_FOLDER
        require(self.root, [f"{CIFAR10_FOLDER}/{name}" for name in CIFAR10_BATCHES[split]], self.NAME,
                CIFAR10_URL, how=f" by unpacking cifar-10-python.tar.gz in {self.root}")
        images, labels, filenames = zip(*(read_cifar_batch(folder / name, with_filenames=True)
                                          for name in CIFAR10_BATCHES[split]))
        self.labels = {"class": np.concatenate(labels),
                       "image": np.concatenate(images).transpose(0, 2, 3, 1),  # edflow's (32, 32, 3)
                       "filename": np.concatenate(filenames)}

    def _get_split(self) -> str:
        return config_split(self)

    def get_example(self, i):
        return {"image": (self.labels["image"][i] / 127.5 - 1.0).astype(np.float32)}

    def __len__(self):
        return len(self.labels["class"])


class CIFAR10Train(CIFAR10):
    def _get_split(self):
        return "train"


class CIFAR10Test(CIFAR10):
    def _get_split(self):
        return "test"
