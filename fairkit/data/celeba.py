"""CelebA's aligned and cropped faces from their standard layout on disk:

    <root>/img_align_celeba/000001.jpg ...   (178 x 218 JPEGs)
    <root>/list_attr_celeba.txt              (number of images; the 40 attribute names; rows "file v1 ... v40", -1/1)
    <root>/list_eval_partition.txt           (rows "file split", 0 = train, 1 = valid, 2 = test)

Labels are read at construction; images are decoded lazily, one example at a time.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from edflow.data.dataset import DatasetMixin
from edflow.datasets.celeba import ATTRIBUTE_FILE, IMAGE_FOLDER, PARTITION_FILE, read_attribute_file, \
    read_partition_file  # noqa: F401 (the names are part of this module's interface)
from fairkit.data.errors import CorruptDataError, DatasetNotFoundError
from fairkit.data.images import DATA_ENV_VAR, data_root, subset_indices

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
CELEBA_SPLITS = {"train": 0, "valid": 1, "validation": 1, "test": 2, "all": None}
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def expected_layout(folder: Path) -> str:
    return (f"Expected CelebA's aligned & cropped release ({CELEBA_URL}) laid out as:\n"
            f"  {folder}/{IMAGE_FOLDER}/000001.jpg ... 202599.jpg   (unzip img_align_celeba.zip in {folder})\n"
            f"  {folder}/{ATTRIBUTE_FILE}   (line 1: number of images; line 2: the 40 attribute names; then one "
            f"row per image: file name and 40 values of -1/1)\n"
            f"  {folder}/{PARTITION_FILE}   (one row per image: file name and 0 = train, 1 = valid, 2 = test)\n"
            f"Pass root= the folder holding these, or set ${DATA_ENV_VAR} (CelebA is then looked for in "
            f"${DATA_ENV_VAR}/celeba).")


def celeba_dir(root: str | os.PathLike | None = None) -> Path:
    """``root`` (default ``<data root>/celeba``); a root that holds ``celeba/`` (torchvision's layout) works too."""
    folder = data_root(root) if root is not None else data_root() / "celeba"
    nested = folder / "celeba"
    if not (folder / IMAGE_FOLDER).is_dir() and (nested / IMAGE_FOLDER).is_dir():
        return nested
    return folder


def check_layout(folder: Path) -> None:
    missing = [name + "/" for name in [IMAGE_FOLDER] if not (folder / name).is_dir()]
    missing += [name for name in (ATTRIBUTE_FILE, PARTITION_FILE) if not (folder / name).is_file()]
    if not missing:
        return
    hint = ""
    if IMAGE_FOLDER + "/" in missing and (folder / f"{IMAGE_FOLDER}.zip").is_file():
        hint = f"{folder / IMAGE_FOLDER}.zip is there but not unpacked: run `unzip {IMAGE_FOLDER}.zip` in {folder}.\n"
    raise DatasetNotFoundError(f"CelebA is missing or incomplete in {folder}: missing {', '.join(missing)}.\n"
                               f"{hint}{expected_layout(folder)}")


def split_codes(filenames: np.ndarray, partition: dict[str, int], path: Path) -> np.ndarray:
    unassigned = [name for name in filenames if name not in partition]
    if unassigned:
        raise CorruptDataError(f"{path} gives no split for {len(unassigned)} images listed in {ATTRIBUTE_FILE} "
                               f"(first: {unassigned[:3]}); the file is truncated or from another release")
    return np.array([partition[name] for name in filenames], dtype=np.int64)


def check_images_present(folder: Path, filenames: np.ndarray) -> None:
    present = set(os.listdir(folder / IMAGE_FOLDER))
    missing = [name for name in filenames if name not in present]
    if missing:
        raise DatasetNotFoundError(f"{len(missing)} CelebA images are missing from {folder / IMAGE_FOLDER} "
                                   f"(first: {missing[:5]}); unzip the complete img_align_celeba.zip there.\n"
                                   + expected_layout(folder))


def default_crop(size: int) -> int:
    """Side of the centre crop taken before resizing: 140 px (the face) for small images, the full width above."""
    return 140 if size <= 64 else 178


def load_face(path: Path, crop: int, size: int) -> np.ndarray:
    """The image's centred ``crop`` x ``crop`` square, resized to ``size``: float32 (3, size, size) in [-1, 1]."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")  # decodes now, so a truncated file fails here
    except (OSError, SyntaxError) as error:
        raise CorruptDataError(f"{path} could not be decoded ({error}); it is truncated or corrupt: replace it "
                               f"from img_align_celeba.zip") from error
    width, height = image.size
    if crop > min(width, height):
        raise ValueError(f"crop={crop} is larger than the image {path} ({width}x{height}); use crop <= "
                         f"{min(width, height)}")
    left, top = (width - crop) // 2, (height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop)).resize((size, size), Image.Resampling.BILINEAR)
    return (np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0).astype(np.float32)


class CelebA(DatasetMixin):
    """CelebA faces: examples {"image": float32 (3, size, size) in [-1, 1], "attributes": int64 (40,) in {0, 1}}.

    ``split``: "train" | "valid" | "test" (or "all"); ``crop``: side of the centre square cut from the 178 x 218
    image before resizing (default: 140 for size <= 64, else 178); ``subset`` / ``subset_seed`` as for MNIST.
    """

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None, size: int = 64,
                 crop: int | None = None, subset: int | None = None, subset_seed: int | None = None):
        if split not in CELEBA_SPLITS:
            raise ValueError(f"split={split!r} is not one of {tuple(CELEBA_SPLITS)}")
        self.folder, self.split, self.size = celeba_dir(root), split, int(size)
        self.crop = default_crop(self.size) if crop is None else int(crop)
        check_layout(self.folder)
        filenames, self.attribute_names, attributes = read_attribute_file(self.folder / ATTRIBUTE_FILE)
        codes = split_codes(filenames, read_partition_file(self.folder / PARTITION_FILE),
                            self.folder / PARTITION_FILE)
        selected = np.arange(len(filenames)) if CELEBA_SPLITS[split] is None else \
            np.flatnonzero(codes == CELEBA_SPLITS[split])
        chosen = subset_indices(len(selected), subset, subset_seed)
        if chosen is not None:
            selected = selected[chosen]
        self.filenames = filenames[selected]
        check_images_present(self.folder, self.filenames)
        self.labels = {"attributes": attributes[selected]}

    def attribute(self, name: str) -> np.ndarray:
        """One attribute's column, int64 (N,) in {0, 1}."""
        if name not in self.attribute_names:
            close = difflib.get_close_matches(name, self.attribute_names, n=3)
            raise KeyError(f"unknown CelebA attribute {name!r}" + (f"; did you mean {close}?" if close else
                                                                    f"; known: {self.attribute_names}"))
        return self.labels["attributes"][:, self.attribute_names.index(name)]

    def get_example(self, i: int) -> dict:
        return {"image": load_face(self.folder / IMAGE_FOLDER / self.filenames[i], self.crop, self.size)}

    def __len__(self) -> int:
        return len(self.filenames)
