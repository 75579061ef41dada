"""Attribute MNIST: MNIST digits drawn in colour, with two binary visual attributes.

A CPU-scale stand-in for CelebA experiments that keeps their designs:

- a biased dataset plus a small balanced reference set (fair generative modelling): settings ``90_10`` and
  ``80_20`` over one attribute and ``multi`` over two (4 groups), reference size per group
  ``balanced_size / n_groups * perc`` with perc in {0.1, 0.25, 0.5, 1.0};
- a training set in which a target attribute is correlated with a protected one, and balanced validation and test
  sets (latent-space de-biasing and other fair classifiers).

Attributes (label ``"attributes"``, int64 (N, 2), columns in :data:`ATTRIBUTES` order):

- ``colour``: 0 = the digit is drawn green, 1 = red. The builders assign it, so any proportion is possible.
  With ``colour_spread`` s > 0 the ink is a per-digit mix ``(1 - u) green + u red``, u in [0, s/2] for green
  digits and in [1 - s/2, 1] for red ones: the two colours then lie at the ends of a continuum that the data
  covers, instead of being two isolated points. (A GAN trained on two isolated inks can get stuck on one of them:
  its discriminator rates the untrained-on mixtures in between lower than either, so no small step towards the
  other colour pays off.)
- ``digit_group``: 0 = digits 0-4, 1 = digits 5-9. Given by the digit (MNIST has about 49% of 5-9).

Examples: ``{"image": float32 (3, size, size) in [-1, 1], "attributes": (2,) int64, "class": digit int64,
"mnist_index": int64, ...}`` (``mnist_index``: the digit's index in MNIST's split; plus ``"group"`` and
``"reference"`` for the biased/reference builders). Images are kept as grey uint8 digits and
coloured one batch at a time, so 60k examples take 47 MB.

The colouring is :mod:`fairkit.data.coloured_digits`'s (inks ``GREEN_RED_INKS``, grey digit times ink, padding or
resizing), configured here.

Pools: ``train`` is MNIST's training split minus a fixed held-out part of :data:`VALIDATION_SIZE` digits, which is
the ``validation`` pool; ``test`` is MNIST's test split. The hold-out does not depend on ``seed``, so a validation
set never shares a digit with a training set; sets drawn in one call never share a digit either.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence, Union

import numpy as np
import torch

from edflow.data.dataset import ArrayDataset
from fairkit.data import coloured_digits as cd

ATTRIBUTES = ("colour", "digit_group")
ATTRIBUTE_VALUES = {"colour": ("green", "red"), "digit_group": ("0-4", "5-9")}
# RGB ink of green (colour 0) and red (colour 1), in [0, 1]; the background stays black.
INK_COLOURS = cd.GREEN_RED_INKS
# Group proportions of the biased set. Single-attribute settings: value 0 is the majority (CelebA: female).
# multi: groups 2 * a0 + a1 in the paper's CelebA (black hair, male) training split: 26216, 24878, 3784, 5122 of 60000.
BIAS_SETTINGS = {"90_10": (0.9, 0.1), "80_20": (0.8, 0.2), "multi": (0.437, 0.415, 0.063, 0.085)}
DEFAULT_BIAS_ATTRIBUTES = {"90_10": ("colour",), "80_20": ("colour",), "multi": ("colour", "digit_group")}
REFERENCE_PERCS = (0.1, 0.25, 0.5, 1.0)
POOLS = ("train", "validation", "test")
VALIDATION_SIZE = 10000
POOL_SEED = 0  # fixes the train/validation hold-out for every user seed
PAD_SIZE = 32
Seed = Union[int, Sequence[int]]  # anything np.random.default_rng takes


def attribute_index(name: str) -> int:
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; Attribute MNIST has {ATTRIBUTES}")
    return ATTRIBUTES.index(name)


def attributes_of(digits: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """The (N, 2) int64 attribute matrix of digits drawn in the given colours."""
    return np.stack([np.asarray(colours), np.asarray(digits) >= 5], axis=1).astype(np.int64)


def load_pool(pool: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey digits uint8 (N, 28, 28), their digit labels int64 (N,) and their indices in MNIST's split (N,) of
    one pool (see the module's docstring)."""
    if pool not in POOLS:
        raise ValueError(f"pool/split {pool!r} is not one of {POOLS}")
    root = None if root is None else str(root)
    if pool == "test":
        images, digits = cd.cached_mnist("test", root)
        return images, digits, np.arange(len(digits))
    images, digits = cd.cached_mnist("train", root)
    validation, train = cd.split_permutation(len(digits), first=VALIDATION_SIZE,
                                             rng=np.random.default_rng(POOL_SEED), sort=True)
    chosen = validation if pool == "validation" else train
    return images[chosen], digits[chosen], chosen


def split_counts(size: int, proportions: Sequence[float]) -> np.ndarray:
    """``size`` split by ``proportions`` into integers that sum to ``size`` (largest remainders get the rest)."""
    proportions = np.asarray(proportions, dtype=np.float64)
    exact = size * proportions / proportions.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - counts), kind="stable")
    counts[remainder_order[: size - counts.sum()]] += 1
    return counts


def check_cell(cell: Mapping[str, int]) -> None:
    for name, value in cell.items():
        attribute_index(name)
        if value not in (0, 1):
            raise ValueError(f"attribute values are 0 or 1, got {name}={value!r}")


def draw_cells(digits: np.ndarray, cells: Sequence[Mapping[str, int]], counts: Sequence[int],
               rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each cell (a partial assignment of attributes, e.g. ``{"colour": 1}``), ``count`` distinct pool indices
    and their colours. Cells never share an index. An unconstrained colour is drawn uniformly per digit; an
    unconstrained digit group is whatever the drawn digit is."""
    groups = np.asarray(digits) >= 5
    order = rng.permutation(len(digits))
    available = np.ones(len(digits), dtype=bool)
    drawn = []
    for cell, count in zip(cells, counts):
        check_cell(cell)
        candidates = available[order]
        if "digit_group" in cell:
            candidates &= groups[order] == bool(cell["digit_group"])
        chosen = order[np.flatnonzero(candidates)[:count]]
        if len(chosen) < count:
            raise ValueError(f"the pool holds only {len(chosen)} more digits for cell {dict(cell)}, but {count} "
                             f"are needed; ask for a smaller size (or a less extreme split)")
        available[chosen] = False
        colours = (np.full(count, cell["colour"]) if "colour" in cell else rng.integers(0, 2, count))
        drawn.append((chosen, colours.astype(np.int64)))
    return drawn


def check_colour_spread(spread: float) -> float:
    if not 0.0 <= spread < 1.0:
        raise ValueError(f"colour_spread must lie in [0, 1) so that green and red inks stay apart, got {spread}")
    return float(spread)


def red_share_of_ink(colours: torch.Tensor, keys: torch.Tensor, spread: float) -> torch.Tensor:
    """u of the ink ``(1 - u) green + u red`` of each digit: 0 / 1 for ``spread`` 0, else spread over
    [0, spread / 2] (green) or [1 - spread / 2, 1] (red) by a fixed function of ``keys`` (e.g. the MNIST index),
    so a digit keeps its ink across epochs and runs."""
    check_colour_spread(spread)
    jitter = torch.frac(keys.double() * 0.6180339887498949).float()  # golden-ratio sequence: even, deterministic
    offset = jitter * (spread / 2.0)
    return torch.where(colours.bool(), 1.0 - offset, offset)


def colourise(grey: torch.Tensor, colours: torch.Tensor, size: int = PAD_SIZE,
              red_share: torch.Tensor | None = None) -> torch.Tensor:
    """Grey uint8 digits (B, 28, 28) drawn in their colours on black: float32 (B, 3, size, size) in [-1, 1].
    ``size`` 32 pads 2 px per side (strokes stay sharp); other sizes resize bilinearly. ``red_share`` (B,) mixes
    each ink between green (0) and red (1) instead of taking the colour's own ink."""
    inks = INK_COLOURS.to(grey.device)
    rgb = inks[colours.long()] if red_share is None else cd.mix_inks(red_share, inks=inks)
    return cd.colourise(grey.float() / 255.0, rgb, size=size) * 2.0 - 1.0


class AttributeMNIST(ArrayDataset):
    """Coloured digits held as grey uint8 plus labels; images are coloured one batch at a time.

    ``extra_labels``: more per-example arrays (e.g. ``group``, ``reference``) that pass through unchanged.
    ``colour_spread``: see the module's docstring; the ink of a digit is keyed by its ``mnist_index``.
    """

    def __init__(self, images: np.ndarray, digits: np.ndarray, colours: np.ndarray, size: int = PAD_SIZE,
                 extra_labels: Mapping[str, np.ndarray] | None = None, colour_spread: float = 0.0):
        if size < 8:
            raise ValueError(f"image size must be at least 8 pixels, got {size}")
        self.size = int(size)
        self.colour_spread = check_colour_spread(colour_spread)
        super().__init__({"image": torch.as_tensor(np.asarray(images)),
                          "class": np.asarray(digits, dtype=np.int64),
                          "attributes": attributes_of(digits, colours),
                          **{k: np.asarray(v) for k, v in (extra_labels or {}).items()}})

    def process_batch(self, batch: dict) -> dict:
        colours = batch["attributes"][:, attribute_index("colour")]
        red_share = None
        if self.colour_spread > 0:
            if "mnist_index" not in batch:
                raise ValueError("colour_spread > 0 keys each digit's ink by its mnist_index label, which this "
                                 "dataset lacks; build it with the module's make_* functions")
            red_share = red_share_of_ink(colours, batch["mnist_index"], self.colour_spread)
        return {**batch, "image": colourise(batch["image"], colours, self.size, red_share)}


def _gather(pool_arrays: tuple, drawn, extra: Mapping[str, Sequence[int]] | None = None) -> dict:
    """AttributeMNIST's arguments for the drawn cells, in cell order; ``extra[name][k]`` labels cell k's digits.
    Every digit also gets ``mnist_index``, its index in MNIST's split (the pool's source)."""
    images, digits, mnist_index = pool_arrays
    indices = np.concatenate([d[0] for d in drawn])
    colours = np.concatenate([d[1] for d in drawn])
    extra_labels = {name: np.concatenate([np.full(len(d[0]), v, dtype=np.int64) for d, v in zip(drawn, values)])
                    for name, values in (extra or {}).items()}
    extra_labels["mnist_index"] = mnist_index[indices].astype(np.int64)
    return {"images": images[indices], "digits": digits[indices], "colours": colours, "extra_labels": extra_labels}


def setting_name(setting: str | int) -> str:
    """A bias setting's name; YAML 1.1 reads an unquoted 90_10 as the integer 9010, which is taken back."""
    by_digits = {name.replace("_", ""): name for name in BIAS_SETTINGS}
    name = by_digits.get(str(setting), str(setting)) if isinstance(setting, int) else setting
    if name not in BIAS_SETTINGS:
        raise ValueError(f"bias setting {setting!r} is not one of {tuple(BIAS_SETTINGS)}")
    return name


def bias_attributes_for(setting: str, bias_attributes: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The attributes a bias setting is over: one for 90_10 / 80_20, two for multi."""
    setting = setting_name(setting)
    if bias_attributes is None:
        return DEFAULT_BIAS_ATTRIBUTES[setting]
    names = (bias_attributes,) if isinstance(bias_attributes, str) else tuple(bias_attributes)
    for name in names:
        attribute_index(name)
    expected = int(np.log2(len(BIAS_SETTINGS[setting])))
    if len(names) != expected or len(set(names)) != len(names):
        raise ValueError(f"setting {setting!r} is over {expected} distinct attribute(s), got {names}")
    return names


def group_cells(names: Sequence[str]) -> list[dict[str, int]]:
    """The 2^k groups of k attributes, group index = binary number of the values (first attribute highest)."""
    return [{name: (g >> (len(names) - 1 - i)) & 1 for i, name in enumerate(names)} for g in range(2 ** len(names))]


def group_index(attributes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Group index (as :func:`group_cells` numbers them) of each row of an (N, 2) attribute matrix."""
    attributes = np.asarray(attributes)
    index = np.zeros(len(attributes), dtype=np.int64)
    for name in names:
        index = index * 2 + attributes[:, attribute_index(name)]
    return index


def _biased_and_reference_arrays(setting: str, perc: float, size: int, balanced_size: int | None,
                                 bias_attributes, pool: str, seed: Seed, root) -> tuple[dict, dict]:
    setting = setting_name(setting)
    names = bias_attributes_for(setting, bias_attributes)
    if not 0.0 < perc <= 1.0:
        raise ValueError(f"perc is the reference set's fraction of the balanced size, in (0, 1]; got {perc} "
                         f"(the paper uses {REFERENCE_PERCS})")
    cells = group_cells(names)
    balanced_size = size if balanced_size is None else int(balanced_size)
    per_group = int(balanced_size / len(cells) * perc)
    if per_group < 1 or size < len(cells):
        raise ValueError(f"size={size}, balanced_size={balanced_size}, perc={perc} leave a group empty; "
                         f"increase the sizes")
    pool_arrays = load_pool(pool, root)
    counts = [per_group] * len(cells) + list(split_counts(int(size), BIAS_SETTINGS[setting]))
    drawn = draw_cells(pool_arrays[1], cells + cells, counts, np.random.default_rng(seed))
    groups = list(range(len(cells)))
    reference = _gather(pool_arrays, drawn[:len(cells)], {"group": groups, "reference": [1] * len(cells)})
    biased = _gather(pool_arrays, drawn[len(cells):], {"group": groups, "reference": [0] * len(cells)})
    return biased, reference


def make_biased_and_reference(setting: str = "90_10", perc: float = 1.0, size: int = 10000,
                              balanced_size: int | None = None, bias_attributes: str | Sequence[str] | None = None,
                              pool: str = "train", seed: Seed = 0, image_size: int = PAD_SIZE,
                              root: str | os.PathLike | None = None,
                              colour_spread: float = 0.0) -> tuple[AttributeMNIST, AttributeMNIST]:
    """A biased dataset of ``size`` digits with the setting's group proportions, and a disjoint balanced reference
    set with ``int(balanced_size / n_groups * perc)`` digits per group (``balanced_size`` defaults to ``size``, as
    the paper's biased and balanced halves are equally large).

    Both carry labels ``group`` (index over the bias attributes, see :func:`group_cells`) and ``reference``
    (1 for the reference set, 0 for the biased one).
    """
    biased, reference = _biased_and_reference_arrays(setting, perc, size, balanced_size, bias_attributes, pool,
                                                     seed, root)
    return (AttributeMNIST(**biased, size=image_size, colour_spread=colour_spread),
            AttributeMNIST(**reference, size=image_size, colour_spread=colour_spread))


def correlated_cells(target: str, protected: str, correlation: float) -> tuple[list[dict[str, int]], np.ndarray]:
    """Cells (target, protected) in {0,1}^2 and their proportions: both attributes balanced and their Pearson
    correlation ``correlation``, i.e. P(target == protected) = (1 + correlation) / 2."""
    attribute_index(target), attribute_index(protected)
    if target == protected:
        raise ValueError(f"target and protected attribute must differ, both are {target!r}")
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must lie in [-1, 1], got {correlation}")
    agree, disagree = (1.0 + correlation) / 4.0, (1.0 - correlation) / 4.0
    cells = [{target: t, protected: g} for t in (0, 1) for g in (0, 1)]
    return cells, np.array([agree, disagree, disagree, agree])


def largest_size(digits: np.ndarray, cells: Sequence[Mapping[str, int]], proportions: Sequence[float]) -> int:
    """The largest size whose cells the pool can fill (only the digit group limits a cell)."""
    groups = np.asarray(digits) >= 5
    proportions = np.asarray(proportions, dtype=np.float64) / np.sum(proportions)
    need = {0: 0.0, 1: 0.0}
    for cell, p in zip(cells, proportions):
        if "digit_group" in cell:
            need[cell["digit_group"]] += p
    limits = [np.sum(groups == bool(g)) / need[g] for g in (0, 1) if need[g] > 0]
    return int(min(limits + [len(digits)])) - len(cells)  # slack for the rounding in split_counts


def _correlated_arrays(pool: str, size: int | None, target: str, protected: str, correlation: float, seed: Seed,
                       root) -> dict:
    cells, proportions = correlated_cells(target, protected, correlation)
    pool_arrays = load_pool(pool, root)
    digits = pool_arrays[1]
    size = largest_size(digits, cells, proportions) if size is None else int(size)
    drawn = draw_cells(digits, cells, split_counts(size, proportions), np.random.default_rng(seed))
    return _gather(pool_arrays, drawn)


def make_correlated(pool: str = "train", size: int | None = None, target: str = "digit_group",
                    protected: str = "colour", correlation: float = 0.0, seed: Seed = 0, image_size: int = PAD_SIZE,
                    root: str | os.PathLike | None = None, colour_spread: float = 0.0) -> AttributeMNIST:
    """``size`` digits (default: as many as the pool allows) in which the binary ``target`` and ``protected``
    attributes are each balanced and have Pearson correlation ``correlation``; 0 gives a balanced set (all four
    (target, protected) cells equally large), e.g. for validation and test."""
    return AttributeMNIST(**_correlated_arrays(pool, size, target, protected, correlation, seed, root),
                          size=image_size, colour_spread=colour_spread)


def make_balanced(pool: str = "test", size: int | None = None, seed: Seed = 0, image_size: int = PAD_SIZE,
                  root: str | os.PathLike | None = None, colour_spread: float = 0.0) -> AttributeMNIST:
    """``size`` digits (default: as many as the pool allows) with all four (colour, digit group) cells equally
    large, so every attribute and every bias group is balanced (an unbiased set for FID and attribute classifiers)."""
    return make_correlated(pool, size, "digit_group", "colour", 0.0, seed, image_size, root, colour_spread)


def make_cells(cells: Sequence[Mapping[str, int]], counts: Sequence[int], pool: str = "train", seed: Seed = 0,
               image_size: int = PAD_SIZE, root: str | os.PathLike | None = None,
               colour_spread: float = 0.0) -> AttributeMNIST:
    """``counts[k]`` digits of each cell (a partial assignment such as ``{"colour": 1}``, see :func:`draw_cells`),
    in cell order, with the label ``group`` = the cell's index."""
    pool_arrays = load_pool(pool, root)
    drawn = draw_cells(pool_arrays[1], cells, counts, np.random.default_rng(seed))
    return AttributeMNIST(**_gather(pool_arrays, drawn, {"group": list(range(len(cells)))}), size=image_size,
                          colour_spread=colour_spread)


def root_from(root, config: Mapping | None):
    """An explicit ``root``, else the run config's ``data_root`` key, else None (env FAIRKIT_DATA or data/)."""
    return root if root is not None else (config or {}).get("data_root")


class CorrelatedAttributeMNIST(AttributeMNIST):
    """:func:`make_correlated` as a dataset class for configs (``{target: ..., params: {...}}``);
    ``correlation: 0`` gives a balanced validation or test set."""

    def __init__(self, pool: str = "train", size: int | None = None, target: str = "digit_group",
                 protected: str = "colour", correlation: float = 0.0, seed: Seed = 0, image_size: int = PAD_SIZE,
                 root: str | os.PathLike | None = None, config: Mapping | None = None, colour_spread: float = 0.0):
        arrays = _correlated_arrays(pool, size, target, protected, correlation, seed, root_from(root, config))
        super().__init__(**arrays, size=image_size, colour_spread=colour_spread)


class BiasedAttributeMNIST(AttributeMNIST):
    """:func:`make_biased_and_reference` as a dataset class for configs. ``part``: ``biased``, ``reference`` or
    ``both`` (reference digits first, then the biased ones; the two are told apart by the ``reference`` label)."""
    PARTS = ("biased", "reference", "both")

    def __init__(self, part: str = "both", setting: str = "90_10", perc: float = 1.0, size: int = 10000,
                 balanced_size: int | None = None, bias_attributes: str | Sequence[str] | None = None,
                 pool: str = "train", seed: Seed = 0, image_size: int = PAD_SIZE,
                 root: str | os.PathLike | None = None, config: Mapping | None = None, colour_spread: float = 0.0):
        if part not in self.PARTS:
            raise ValueError(f"part={part!r} is not one of {self.PARTS}")
        biased, reference = _biased_and_reference_arrays(setting, perc, size, balanced_size, bias_attributes, pool,
                                                         seed, root_from(root, config))
        arrays = concatenate_arrays(reference, biased) if part == "both" else {"biased": biased,
                                                                                "reference": reference}[part]
        self.setting, self.bias_attributes = setting, bias_attributes_for(setting, bias_attributes)
        super().__init__(**arrays, size=image_size, colour_spread=colour_spread)


def concatenate_arrays(first: dict, second: dict) -> dict:
    """Two sets of AttributeMNIST arguments, one after the other."""
    return {"images": np.concatenate([first["images"], second["images"]]),
            "digits": np.concatenate([first["digits"], second["digits"]]),
            "colours": np.concatenate([first["colours"], second["colours"]]),
            "extra_labels": {k: np.concatenate([first["extra_labels"][k], second["extra_labels"][k]])
                             for k in first["extra_labels"]}}
