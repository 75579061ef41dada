"""IIN's datasets, under the class paths of the original release.

Single images: ``{"image": float32 (C, H, W) in [-1, 1], <labels>}``.
Pairs (disentangling IIN): ``{"factor": int64 F, "example1": {...}, "example2": {...}}`` where both examples share
factor ``F``; pair datasets say how many factors they define (``n_factors``, the last one is the residual, at
``residual_index``).

Constructed by the runner as ``Cls(config=config)`` (or ``{target: ..., params: {subset: 1000}}``). Config keys:
``spatial_size`` (image side; 32, or 64 for CelebA), ``data_root`` (default: $FAIRKIT_DATA, else ``data/``) and,
for FactorCelebA, ``CelebAFactors/attributes``.

Training images are dequantised, (x + u) / 256 with one u ~ U[0, 1) per image; test images are not, so that
evaluations (and FID reference statistics) are deterministic.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from edflow.data.dataset import DatasetMixin
from edflow.util import retrieve
from fairkit.data import CIFAR10, MNIST, CelebA, FashionMNIST
from fairkit.data.cifar import CIFAR10_FOLDER
from fairkit.data.coloured_digits import colourise, uniform_colours
from fairkit.data.images import data_root as default_data_root

TEST_PAIRS_SEED = 1  # test pairs, colours and subsets are fixed by this seed
CELEBA_TEST_SIZE = 10000
CELEBA_CROP = 160  # centre square of the 178 x 218 aligned faces, then resized
FACTOR_CELEBA_ATTRIBUTES = ("Eyeglasses", "Male", "No_Beard", "Smiling")
N_DIGITS = 10


def spatial_size(config: Mapping | None, default: int) -> int:
    return int(retrieve(config or {}, "spatial_size", default=default))


def data_folder(config: Mapping | None) -> Path:
    """``data_root`` from the config, else $FAIRKIT_DATA, else ``data/``."""
    return default_data_root(retrieve(config or {}, "data_root", default=None))


def named_root(config: Mapping | None):
    """The config's ``data_root`` or None: MNIST-format data then falls back to the installed copies."""
    return retrieve(config or {}, "data_root", default=None)


def nested_folder(base: Path, name: str, marker: str) -> Path:
    """``base/name`` when it holds ``marker`` (the per-dataset layout), else ``base`` itself."""
    return base / name if (base / name / marker).exists() else base


# ---------------------------------------------------------------------------------------------------------------
# Single images
# ---------------------------------------------------------------------------------------------------------------
class _Digits32:
    """MNIST-family images resized to 32 x 32 (bilinear), dequantised in the training split."""
    split, dequantized = "train", True

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        super().__init__(self.split, size=spatial_size(config, 32), root=named_root(config), resize="bilinear",
                         dequantize=self.dequantized, subset=subset, subset_seed=subset_seed)


class MNISTTrain(_Digits32, MNIST):
    """MNIST training digits, 1 x 32 x 32, dequantised: {"image", "class"}."""


class MNISTTest(MNISTTrain):
    """MNIST test digits, 1 x 32 x 32: {"image", "class"}."""
    split, dequantized = "test", False


class FashionMNISTTrain(_Digits32, FashionMNIST):
    """Fashion-MNIST training images, 1 x 32 x 32, dequantised: {"image", "class"}."""


class FashionMNISTTest(FashionMNISTTrain):
    split, dequantized = "test", False


class CIFAR10Train(CIFAR10):
    """CIFAR-10 training images, 3 x 32 x 32, dequantised: {"image", "class"}; read from
    ``<data_root>/cifar10/cifar-10-batches-py`` or ``<data_root>/cifar-10-batches-py``."""
    split, dequantized = "train", True

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        root = nested_folder(data_folder(config), "cifar10", CIFAR10_FOLDER)
        super().__init__(self.split, root=root, size=spatial_size(config, 32), dequantize=self.dequantized,
                         subset=subset, subset_seed=subset_seed)


class CIFAR10Test(CIFAR10Train):
    split, dequantized = "test", False


def dequantize_image(image: np.ndarray) -> np.ndarray:
    """[-1, 1] image -> (x + u) / 256 in [-1, 1) with one u ~ U[0, 1) (torch's RNG, so resumed runs repeat it)."""
    pixels = np.round((image + 1.0) * 127.5)
    return ((pixels + float(torch.rand(()))) / 128.0 - 1.0).astype(np.float32)


class CelebATrain(CelebA):
    """CelebA faces, 3 x 64 x 64 (centre 160 px square, resized), dequantised: {"image", "attributes"}; read from
    ``<data_root>/celeba``."""
    split, dequantized = "train", True

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        super().__init__(self.split, root=data_folder(config) / "celeba", size=spatial_size(config, 64),
                         crop=CELEBA_CROP, subset=subset, subset_seed=subset_seed)

    def get_example(self, i: int) -> dict:
        example = super().get_example(i)
        if self.dequantized:
            example["image"] = dequantize_image(example["image"])
        return example


class CelebATest(CelebATrain):
    """A fixed random choice of (at most) 10000 test faces, as the paper evaluates."""
    split, dequantized = "test", False

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        if subset is None:
            size = len(CelebA(self.split, root=data_folder(config) / "celeba", size=8, crop=CELEBA_CROP))
            subset, subset_seed = min(size, CELEBA_TEST_SIZE), TEST_PAIRS_SEED
        super().__init__(config, subset=subset, subset_seed=subset_seed)


# ---------------------------------------------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------------------------------------------
def random_member(groups: list[np.ndarray], group_of: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
    """For every entry of ``group_of``, a uniformly drawn member of that group."""
    sizes = np.array([len(g) for g in groups])
    if (sizes[group_of] == 0).any():
        raise ValueError("a group has no members to draw a partner from; use a larger subset")
    offsets = torch.rand(len(group_of), generator=generator, dtype=torch.float64).numpy()
    picks = np.minimum((offsets * sizes[group_of]).astype(np.int64), sizes[group_of] - 1)
    flat = np.concatenate([g for g in groups if len(g)]) if len(groups) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat[starts[group_of] + picks]


class ColorfulDigits(DatasetMixin):
    """MNIST digits coloured with c ~ U[0, 1]^3: image = x * c for x in [-1, 1] (3 x 32 x 32), by
    :mod:`fairkit.data.coloured_digits`.

    Training draws colours (and partners) afresh for every batch from torch's RNG; test colours are fixed by a
    seed. Whole batches come from ``get_batch`` (the runner's fast path).
    """
    split = "train"

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        digits_cls = MNISTTrain if self.split == "train" else MNISTTest
        self.digits = digits_cls(config, subset=subset, subset_seed=subset_seed)
        self.classes = self.digits.arrays["class"].numpy()
        self.fixed = self.split != "train"
        self.generator = torch.Generator().manual_seed(TEST_PAIRS_SEED) if self.fixed else None
        if self.fixed:
            self.colours = self.draw_colours(len(self))

    def __len__(self) -> int:
        return len(self.digits)

    def draw_colours(self, n: int) -> torch.Tensor:
        return uniform_colours(n, generator=self.generator)

    def coloured(self, indices: np.ndarray, colours: torch.Tensor) -> dict:
        batch = self.digits.get_batch(indices)
        return {"image": colourise(batch["image"], colours), "class": batch["class"], "color": colours.float()}

    def single_batch(self, indices: np.ndarray) -> dict:
        colours = self.colours[torch.as_tensor(indices)] if self.fixed else self.draw_colours(len(indices))
        return self.coloured(indices, colours)

    def get_example(self, i: int) -> dict:
        batch = self.get_batch([i])
        return {k: _row(v) for k, v in batch.items() if k != "index_"}

    @property
    def labels(self) -> dict:
        labels = {"class": self.classes}
        if self.fixed:
            labels["color"] = self.colours.numpy()
        return labels


def _row(value):
    if isinstance(value, Mapping):
        return {k: _row(v) for k, v in value.items()}
    return value[0].numpy() if torch.is_tensor(value) else value[0]


class SingleColorfulMNISTTrain(ColorfulDigits):
    """Single coloured digits: {"image" (3, 32, 32), "class", "color" (3,)}."""

    def get_batch(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        return {**self.single_batch(indices), "index_": torch.as_tensor(indices)}


class SingleColorfulMNISTTest(SingleColorfulMNISTTrain):
    split = "test"


class ColorfulMNISTTrain(ColorfulDigits):
    """Pairs of coloured digits. F ~ U{0, 1}; F = 0: same digit, independent colours; F = 1: any digit, the same
    colour. Factors: 0 digit, 1 colour, 2 residual."""
    n_factors = 3
    residual_index = 2
    factor_names = ("digit", "color", "residual")

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        super().__init__(config, subset=subset, subset_seed=subset_seed)
        self.members = [np.flatnonzero(self.classes == c) for c in range(N_DIGITS)]
        if self.fixed:
            self.pairs = self.draw_pairs(np.arange(len(self)))

    def draw_pairs(self, indices: np.ndarray) -> dict:
        n = len(indices)
        factor = torch.randint(0, 2, (n,), generator=self.generator)
        same_digit = random_member(self.members, self.classes[indices], self.generator)
        any_digit = torch.randint(0, len(self), (n,), generator=self.generator).numpy()
        partner = np.where(factor.numpy() == 0, same_digit, any_digit)
        colour1, colour2 = self.draw_colours(n), self.draw_colours(n)
        colour2 = torch.where((factor == 1)[:, None], colour1, colour2)
        return {"factor": factor, "partner": torch.as_tensor(partner), "color1": colour1, "color2": colour2}

    def get_batch(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        if self.fixed:
            pairs = {k: v[torch.as_tensor(indices)] for k, v in self.pairs.items()}
        else:
            pairs = self.draw_pairs(indices)
        return {"factor": pairs["factor"],
                "example1": self.coloured(indices, pairs["color1"]),
                "example2": self.coloured(pairs["partner"].numpy(), pairs["color2"]),
                "index_": torch.as_tensor(indices)}

    @property
    def labels(self) -> dict:
        labels = {"class": self.classes}
        if self.fixed:
            labels.update(factor=self.pairs["factor"].numpy(), partner=self.pairs["partner"].numpy())
        return labels


class ColorfulMNISTTest(ColorfulMNISTTrain):
    split = "test"


class FactorCelebATrain(DatasetMixin):
    """Pairs of CelebA faces sharing one attribute (``CelebAFactors/attributes``, default Eyeglasses, Male,
    No_Beard, Smiling): F uniform over the attributes; the partner has the same value of attribute F.
    Factors: one per attribute, then the residual."""
    base_cls = CelebATrain

    def __init__(self, config: Mapping | None = None, subset: int | None = None, subset_seed: int | None = None):
        self.faces = self.base_cls(config, subset=subset, subset_seed=subset_seed)
        self.attribute_names = list(retrieve(config or {}, "CelebAFactors/attributes",
                                             default=list(FACTOR_CELEBA_ATTRIBUTES)))
        self.values = np.stack([self.faces.attribute(name) for name in self.attribute_names], axis=1)
        self.n_factors = len(self.attribute_names) + 1
        self.residual_index = len(self.attribute_names)
        self.factor_names = tuple(self.attribute_names) + ("residual",)
        self.fixed = self.faces.split != "train"
        self.generator = torch.Generator().manual_seed(TEST_PAIRS_SEED) if self.fixed else None
        if self.fixed:
            self.factor, self.partner = self.draw_pairs(np.arange(len(self)))

    def __len__(self) -> int:
        return len(self.faces)

    def draw_pairs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A factor per example and a partner with the same value of that attribute."""
        factor = torch.randint(0, len(self.attribute_names), (len(indices),), generator=self.generator).numpy()
        groups = [np.flatnonzero(self.values[:, f] == v) for f in range(len(self.attribute_names)) for v in (0, 1)]
        group_of = 2 * factor + self.values[indices, factor]
        return factor, random_member(groups, group_of, self.generator)

    def get_example(self, i: int) -> dict:
        if self.fixed:
            factor, partner = int(self.factor[i]), int(self.partner[i])
        else:
            (factor,), (partner,) = self.draw_pairs(np.array([i]))
        return {"factor": np.int64(factor), "example1": self.faces[i], "example2": self.faces[int(partner)]}

    @property
    def labels(self) -> dict:
        labels = {"attributes": self.faces.labels["attributes"]}
        if self.fixed:
            labels.update(factor=self.factor, partner=self.partner)
        return labels


class FactorCelebATest(FactorCelebATrain):
    base_cls = CelebATest


__all__ = ["MNISTTrain", "MNISTTest", "FashionMNISTTrain", "FashionMNISTTest", "CIFAR10Train", "CIFAR10Test",
           "CelebATrain", "CelebATest", "SingleColorfulMNISTTrain", "SingleColorfulMNISTTest", "ColorfulMNISTTrain",
           "ColorfulMNISTTest", "FactorCelebATrain", "FactorCelebATest"]
