"""CelebA's annotation files, and edflow 0.4's ``CelebA`` reading ``$EDDATA_CACHE/CelebA/``:

    img_align_celeba/000001.jpg ...   (unzipped img_align_celeba.zip)
    list_attr_celeba.txt              (number of images; the 40 attribute names; rows "file v1 ... v40", -1/1)
    list_eval_partition.txt           (rows "file split", 0 = train, 1 = val, 2 = test)
    identity_CelebA.txt               (rows "file identity"; optional here, edflow required it)

edflow's examples: ``{"image": float32 (218, 178, 3) in [-1, 1]}`` with the labels ``fname``
(``img_align_celeba/<file>``), ``partition``, ``identity`` (when the file is there) and ``attributes`` (-1/1).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from edflow.data.dataset import CorruptDataError, DatasetMixin
from edflow.datasets.utils import config_split, get_root, require

IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
CELEBA_SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
SPLITS = {"train": 0, "val": 1, "test": 2}


def data_rows(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip()]


def read_attribute_file(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """File names (N,), the attribute names and the attributes int64 (N, A) in {0, 1} (1 where the file has 1)."""
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    try:
        count = int(lines[0])
        names = lines[1].split()
    except (IndexError, ValueError) as error:
        raise CorruptDataError(f"{path} should start with the number of images and a line of attribute names; "
                               f"it starts with {lines[:2]!r}: replace it with the original {ATTRIBUTE_FILE}") \
            from error
    rows = data_rows(lines[2:])
    if len(rows) != count:
        raise CorruptDataError(f"{path} announces {count} images but lists {len(rows)}: the file is truncated or "
                               f"edited; replace it with the original {ATTRIBUTE_FILE}")
    filenames, values = [], []
    for row in rows:
        name, *rest = row.split(None, 1)
        filenames.append(name)
        values.append("".join("".join(rest).replace("-1", "0").split()))  # one character per attribute
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    digits = np.frombuffer("".join(values).encode("ascii", errors="replace"), dtype=np.uint8) - ord("0")
    bad_rows = np.flatnonzero(lengths != len(names))
    if not bad_rows.size:
        bad_rows = np.flatnonzero((digits.reshape(count, len(names)) > 1).any(axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        raise CorruptDataError(f"{path}, line {lines.index(rows[row]) + 1}: expected a file name and "
                               f"{len(names)} values of -1/1, got {rows[row]!r}")
    return np.array(filenames), names, digits.reshape(count, len(names)).astype(np.int64)


def read_partition_file(path: Path) -> dict[str, int]:
    """File name -> split code (0 train, 1 valid, 2 test)."""
    partition = {}
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise CorruptDataError(f"{path}, line {number}: expected a file name and a split 0/1/2, got {line!r}; "
                                   f"replace it with the original {PARTITION_FILE}")
        partition[fields[0]] = int(fields[1])
    return partition


def read_identity_file(path: Path) -> dict[str, int]:
    identities = {}
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise CorruptDataError(f"{path}, line {number}: expected a file name and an identity number, got "
                                   f"{line!r}; replace it with the original {IDENTITY_FILE}")
        identities[fields[0]] = int(fields[1])
    return identities


class CelebA(DatasetMixin):
    NAME = "CelebA"

    def __init__(self, config=None):
        self.config = config or {}
        self.root = get_root(self.NAME)
        split = self._get_split()
        if split not in SPLITS:
            raise ValueError(f"CelebA split must be one of {tuple(SPLITS)}, got {split!r}")
        require(self.root, [IMAGE_FOLDER + "/", ATTRIBUTE_FILE, PARTITION_FILE], self.NAME, CELEBA_SOURCE,
                how=f" (unzip img_align_celeba.zip in {self.root})")
        filenames, _, attributes = read_attribute_file(self.root / ATTRIBUTE_FILE)
        partition = read_partition_file(self.root / PARTITION_FILE)
        unassigned = [name for name in filenames if name not in partition]
        if unassigned:
            raise CorruptDataError(f"{self.root / PARTITION_FILE} gives no split for {len(unassigned)} images "
                                   f"listed in {ATTRIBUTE_FILE} (first: {unassigned[:3]})")
        codes = np.array([partition[name] for name in filenames], dtype=np.int64)
        selected = np.flatnonzero(codes == SPLITS[split])
        self.labels = {"fname": np.array([f"{IMAGE_FOLDER}/{name}" for name in filenames[selected]]),
                       "partition": codes[selected],
                       "attributes": 2 * attributes[selected] - 1}  # edflow kept the file's -1/1
        if (self.root / IDENTITY_FILE).is_file():
            identities = read_identity_file(self.root / IDENTITY_FILE)
            self.labels["identity"] = np.array([identities.get(name, -1) for name in filenames[selected]])

    def _get_split(self) -> str:
        return config_split(self)

    def get_example(self, i):
        path = os.path.join(self.root, self.labels["fname"][i])
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except FileNotFoundError:
            raise CorruptDataError(f"{path} is listed in {ATTRIBUTE_FILE} but missing; unzip the complete "
                                   f"img_align_celeba.zip in {self.root}") from None
        except (OSError, SyntaxError) as error:
            raise CorruptDataError(f"{path} could not be decoded ({error}); replace it from "
                                   f"img_align_celeba.zip") from error
        return {"image": (array / 127.5 - 1.0).astype(np.float32)}

    def __len__(self):
        return len(self.labels["fname"])


class CelebATrain(CelebA):
    def _get_split(self):
        return "train"


class CelebAVal(CelebA):
    def _get_split(self):
        return "val"


class CelebATest(CelebA):
    def _get_split(self):
        return "test"
