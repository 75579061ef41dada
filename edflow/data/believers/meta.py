"""edflow 0.4's ``MetaDataset``: a folder of memory-mapped label arrays plus ``meta.yaml``, read without code.

    root/
      meta.yaml                              description, loaders, loader_kwargs (all optional)
      labels/
        image:image-*-1000-*-<U24.npy        "name[:loader]-*-<shape, x-separated>-*-<dtype>.npy"
        class-*-1000-*-int64.npy
        keypoints-*-1000x17x3-*-float32.npy

Every label file is opened as a copy-on-write ``np.memmap``; files in sub-folders of ``labels/`` get the key
``<folder>/<name>``. A label whose key names a loader (``image:image``, or ``loaders: {image: image}`` in
``meta.yaml``) is kept under ``<name>_`` (e.g. the image paths under ``image_``) and examples hold the loader's
result under ``<name>``; ``loader_kwargs: {<name>: {...}}`` are passed to it. Loaders: ``image`` (PIL, ``support``
"0->255" | "0->1" | "-1->1", ``resize_to``, ``root``), ``np`` (``np.load``, ``root``), ``category``/``cat``
(``categories[value]``), or any import path. ``store_label_mmap`` writes a label in this format.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

import numpy as np
import yaml

from edflow.data.dataset import DataError, DatasetMixin, DatasetNotFoundError
from edflow.util import get_obj_from_str

LABEL_FILE = re.compile(r"^(?P<key>.+)-\*-(?P<shape>[0-9x]+)-\*-(?P<dtype>[^-]+)\.npy$")
SUPPORTS = {"0->255": (0.0, 255.0), "0->1": (0.0, 1.0), "-1->1": (-1.0, 1.0)}


def image_loader(path: str, *, root: str = "", support: str = "0->255", resize_to=None) -> np.ndarray:
    from PIL import Image

    if support not in SUPPORTS:
        raise ValueError(f"image loader: support {support!r} is not one of {sorted(SUPPORTS)}")
    image = Image.open(os.path.join(root, str(path)))
    if resize_to is not None:
        image = image.resize([resize_to] * 2 if isinstance(resize_to, int) else list(resize_to))
    array = np.asarray(image)
    if support == "0->255":
        return array
    low, high = SUPPORTS[support]
    return (array.astype(np.float32) / 255.0 * (high - low) + low).astype(np.float32)


def numpy_loader(path: str, *, root: str = "") -> np.ndarray:
    return np.load(os.path.join(root, str(path)))


def category(index, *, categories):
    return categories[index]


DEFAULT_LOADERS: dict[str, Callable] = {"image": image_loader, "np": numpy_loader, "category": category,
                                        "cat": category}


def store_label_mmap(data: np.ndarray, root: str, name: str) -> str:
    """Write ``data`` as a label file ``MetaDataset`` reads under the key ``name``; returns its path."""
    data = np.asarray(data)
    os.makedirs(root, exist_ok=True)
    shape = "x".join(str(int(n)) for n in data.shape)
    path = os.path.join(root, f"{name}-*-{shape}-*-{data.dtype}.npy")
    mmap = np.memmap(path, dtype=data.dtype, mode="w+", shape=data.shape)
    mmap[:] = data
    mmap.flush()
    return path


def load_labels(folder: str, prefix: str = "") -> dict[str, np.ndarray]:
    """Every label file under ``folder`` as a copy-on-write memmap, keyed by name (``sub/name`` in sub-folders)."""
    labels = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            labels.update(load_labels(path, f"{prefix}{name}/"))
            continue
        match = LABEL_FILE.match(name)
        if match:
            shape = tuple(int(n) for n in match["shape"].split("x"))
            labels[prefix + match["key"]] = np.memmap(path, mode="c", shape=shape, dtype=match["dtype"])
    return labels


def split_loader(key: str) -> tuple[str, str | None]:
    name, _, loader = key.partition(":")
    return name, loader or None


def resolve_loader(name: str) -> Callable:
    return DEFAULT_LOADERS[name] if name in DEFAULT_LOADERS else get_obj_from_str(name)


class MetaDataset(DatasetMixin):
    """The dataset in folder ``root`` (see the module's docstring for the layout)."""

    def __init__(self, root: str):
        meta_path = os.path.join(root, "meta.yaml")
        labels_dir = os.path.join(root, "labels")
        if not os.path.isfile(meta_path) or not os.path.isdir(labels_dir):
            raise DatasetNotFoundError(f"{root} is not a MetaDataset folder: it needs meta.yaml and a labels/ folder "
                                       f"of files named <name>-*-<shape>-*-<dtype>.npy (write them with "
                                       f"edflow.data.believers.meta.store_label_mmap)")
        with open(meta_path) as f:
            self.meta: dict[str, Any] = yaml.safe_load(f) or {}
        raw = load_labels(labels_dir)
        loaders = {}
        labels = {}
        for key, values in raw.items():
            name, loader = split_loader(key)
            labels[name] = values
            if loader:
                loaders[name] = loader
        loaders.update(self.meta.get("loaders") or {})
        unknown = sorted(set(loaders) - set(labels))
        if unknown:
            raise DataError(f"{meta_path} names loaders for {unknown}, which have no label file in {labels_dir}")
        kwargs = self.meta.get("loader_kwargs") or {}
        self.loaders = {name: resolve_loader(loader) for name, loader in loaders.items()}
        self.loader_kwargs = {name: dict(kwargs.get(name) or {}) for name in loaders}
        # a loaded label keeps its raw values (paths, indices) under <name>_, as edflow had it
        self.labels = {(f"{name}_" if name in loaders else name): values for name, values in labels.items()}
        lengths = {key: len(values) for key, values in self.labels.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"the labels in {labels_dir} differ in length: {lengths}")
        self.num_examples = next(iter(lengths.values()), 0)
        self.description = self.meta.get("description", "MetaDataset")

    def __len__(self) -> int:
        return self.num_examples

    def get_example(self, i: int) -> dict:
        return {name: loader(self.labels[f"{name}_"][i], **self.loader_kwargs[name])
                for name, loader in self.loaders.items()}
