"""Datasets shared by the methods: MNIST, Fashion-MNIST, CIFAR-10 and CelebA from their standard files.

Every dataset yields {"image": float32 (C, H, W) in [-1, 1], ...labels}; see each class for its label keys.
"""
from fairkit.data.celeba import CELEBA_ATTRIBUTES, CelebA
from fairkit.data.cifar import CIFAR10, CIFAR10_CLASSES, load_cifar10
from fairkit.data.errors import CorruptDataError, DatasetNotFoundError
from edflow.datasets.idx import read_idx, write_idx
from fairkit.data.images import UInt8ImageDataset, data_root
from fairkit.data.mnist import (FASHION_MNIST_CLASSES, MNIST, FashionMNIST, find_idx_files, load_fashion_mnist,
                                load_mnist)

DATASETS = {"mnist": MNIST, "fashionmnist": FashionMNIST, "cifar10": CIFAR10, "celeba": CelebA}

__all__ = ["CELEBA_ATTRIBUTES", "CIFAR10", "CIFAR10_CLASSES", "DATASETS", "FASHION_MNIST_CLASSES", "MNIST", "CelebA",
           "CorruptDataError", "DatasetNotFoundError", "FashionMNIST", "UInt8ImageDataset", "data_root",
           "find_idx_files", "load_cifar10", "load_fashion_mnist", "load_mnist", "read_idx", "write_idx"]
