"""edflow 0.4's MNIST: ``$EDDATA_CACHE/MNIST/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.

Examples: ``{"image": float32 (28, 28, 1) in [-1, 1], "class": uint8}``; labels ``class`` and ``image`` (uint8)."""
from __future__ import annotations

import numpy as np

from edflow.data.dataset import DatasetMixin
from edflow.datasets.idx import idx_magic, read_idx
from edflow.datasets.utils import config_split, get_root, require

IMAGES, LABELS = idx_magic(np.uint8, 3), idx_magic(np.uint8, 1)


class MNIST(DatasetMixin):
    NAME = "MNIST"
    SOURCE = "http://yann.lecun.com/exdb/mnist/"
    FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

    def __init__(self, config=None):
        self.config = config or {}
        self.root = get_root(self.NAME)
        split = self._get_split()
        if split not in self.FILES:
            raise ValueError(f"{self.NAME} split must be train or test, got {split!r}")
        images, labels = self.FILES[split]
        require(self.root, [images, labels], self.NAME, self.SOURCE)
        image_array = read_idx(self.root / images, IMAGES)
        label_array = read_idx(self.root / labels, LABELS)
        self.labels = {"class": label_array, "image": image_array}

    def _get_split(self) -> str:
        return config_split(self)

    def get_example(self, i):
        image = self.labels["image"][i]
        return {"class": self.labels["class"][i], "image": (image / 127.5 - 1.0)[:, :, None].astype(np.float32)}

    def __len__(self):
        return len(self.labels["class"])


class MNISTTrain(MNIST):
    def _get_split(self):
        return "train"


class MNISTTest(MNIST):
    def _get_split(self):
        return "test"
