"""fairgen's datasets: a biased dataset plus a small balanced reference set, on CelebA or on Attribute MNIST.

Every dataset reads the ``Data`` section of the run config (see :class:`DataOptions`), so that the stages of one
experiment (ratio classifier, GAN) see the same digits or faces. Examples carry ``image``, ``attributes``, and for
the biased/reference data ``group`` (index over the bias attributes) and ``reference`` (1 reference, 0 biased).

Config classes (``datasets: {train: fairgen.data.GANTrain, ...}``):

- :class:`GANTrain`: reference and biased examples together (the GAN trains on their union).
- :class:`RatioTrain`: biased vs reference in class-balanced batches (the density-ratio classifier).
- :class:`RatioValidation`: held-out biased and reference examples, as many of each (calibration).
- :class:`BalancedValidation`, :class:`BalancedTest`: balanced over the bias groups (FID reference, classifiers).
- :class:`AttributeTrain`: training data of the attribute classifier (balanced Attribute MNIST; CelebA train).

CelebA pools are its train / valid / test splits; Attribute MNIST's are described in
:mod:`fairkit.data.attribute_mnist`. The CelebA settings follow the paper's construction: equal-size biased and
balanced halves, e.g. 90_10 over Male: 67,507 biased faces and 33,753 * perc reference faces per gender.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np
import torch

from edflow.config import section
from edflow.data import fetch_batch
from edflow.data.dataset import ConcatenatedDataset, DatasetMixin
from fairkit.data import attribute_mnist as amnist
from fairkit.data.celeba import CELEBA_ATTRIBUTES, CelebA

DATASETS = ("attrmnist", "celeba")


@dataclass(frozen=True)
class DataOptions:
    """The ``Data`` section of a run config, checked and completed with these defaults; parsed once per dataset,
    model, iterator or callback (by :func:`data_options`) and passed on."""
    dataset: str = "attrmnist"         # attrmnist | celeba
    setting: str = "90_10"             # 90_10 | 80_20 | multi
    perc: float = 1.0                  # reference size per group = balanced_size / n_groups * perc
    size: int = 10000                  # biased examples
    balanced_size: int | None = None   # default: size (the paper's halves are equally large)
    # default: attrmnist colour (multi: colour, digit_group); celeba Male (multi: Black_Hair, Male)
    bias_attributes: str | tuple[str, ...] | None = None
    image_size: int = 32
    colour_spread: float = 0.0         # attrmnist: inks spread from the pure colours towards each other
    eval_size: int = 2000              # examples of each balanced evaluation set and of each ratio validation part
    attribute_train_size: int | None = 10000  # training examples of the attribute classifier (celeba: null = all)
    seed: int = 0                      # fixes which examples are drawn (not the model's seed)
    allow_fewer: bool = False          # celeba: take fewer examples than asked when a group runs short (tiny data)
    data_root: str | None = None       # default: the config's data_root, else env FAIRKIT_DATA, else data/

    def __getitem__(self, key: str):
        """``options["setting"]``, as code that knew the options as a dict reads them."""
        if key not in DATA_DEFAULTS:
            raise KeyError(key)
        return getattr(self, key)


DATA_DEFAULTS = {f.name: f.default for f in fields(DataOptions)}
DEFAULT_CELEBA_BIAS = {"90_10": ("Male",), "80_20": ("Male",), "multi": ("Black_Hair", "Male")}
CELEBA_POOLS = {"train": "train", "validation": "valid", "test": "test"}
# independent random streams per purpose, so that changing one set never changes another
STREAMS = {"train": 1, "ratio_validation": 2, "validation": 3, "test": 4, "attribute_train": 5}


def data_options(config: Mapping | None) -> DataOptions:
    """The run config's ``Data`` section, checked (a misspelt key, an unknown dataset or setting is an error)."""
    config = dict(config or {})
    given = config.get("Data")
    if isinstance(given, Mapping) and isinstance(given.get("setting"), int):
        # YAML 1.1 reads an unquoted 90_10 as 9010: take the name back before the section's type check
        config["Data"] = {**given, "setting": amnist.setting_name(given["setting"])}
    options = section(config, "Data", DATA_DEFAULTS)
    if options["dataset"] not in DATASETS:
        raise ValueError(f"Data/dataset {options['dataset']!r} is not one of {DATASETS}")
    options["setting"] = amnist.setting_name(options["setting"])
    if options["data_root"] is None:
        options["data_root"] = config.get("data_root")
    if isinstance(options["bias_attributes"], list):  # frozen: a YAML list becomes a tuple
        options["bias_attributes"] = tuple(options["bias_attributes"])
    return DataOptions(**options)


def stream_seed(options: DataOptions, purpose: str) -> list[int]:
    return [int(options.seed), STREAMS[purpose]]


def attribute_names(dataset: str) -> tuple[str, ...]:
    """The columns of the ``attributes`` label of a dataset."""
    return amnist.ATTRIBUTES if dataset == "attrmnist" else CELEBA_ATTRIBUTES


def bias_attributes(options: DataOptions) -> tuple[str, ...]:
    """The attributes the bias setting is over (one, or two for ``multi``), checked against the dataset."""
    if options.dataset == "attrmnist":
        return amnist.bias_attributes_for(options.setting, options.bias_attributes)
    given = options.bias_attributes
    names = DEFAULT_CELEBA_BIAS[options.setting] if given is None else (
        (given,) if isinstance(given, str) else tuple(given))
    unknown = [n for n in names if n not in CELEBA_ATTRIBUTES]
    if unknown:
        raise ValueError(f"Data/bias_attributes {unknown} are not CelebA attributes")
    if len(names) != len(DEFAULT_CELEBA_BIAS[options.setting]):
        raise ValueError(f"setting {options['setting']!r} is over {len(DEFAULT_CELEBA_BIAS[options['setting']])} "
                         f"attribute(s), got Data/bias_attributes {names}")
    return names


def classifier_attributes(config: Mapping, options: DataOptions) -> tuple[str, ...]:
    """The attributes an attribute classifier predicts: ``Model/attributes`` of ``config``, by default every
    attribute of Attribute MNIST, or CelebA's Black_Hair and Male (which serve all three settings)."""
    names = tuple(((config or {}).get("Model") or {}).get("attributes") or (
        amnist.ATTRIBUTES if options.dataset == "attrmnist" else ("Black_Hair", "Male")))
    known = attribute_names(options.dataset)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Model/attributes {unknown} are not attributes of {options['dataset']}; known: {known}")
    return names


def num_groups(options: DataOptions) -> int:
    return 2 ** len(bias_attributes(options))


def group_labels(attributes: np.ndarray, names: Sequence[str], all_names: Sequence[str]) -> np.ndarray:
    """Group index of each row: the bias attributes' values read as a binary number (first attribute highest)."""
    index = np.zeros(len(attributes), dtype=np.int64)
    for name in names:
        index = index * 2 + np.asarray(attributes)[:, list(all_names).index(name)]
    return index


# --- CelebA ----------------------------------------------------------------------------------------------------

class CelebASelection(DatasetMixin):
    """Chosen faces of one CelebA split, with extra per-example labels (``group``, ``reference``)."""

    def __init__(self, faces: CelebA, indices: np.ndarray, extra_labels: Mapping[str, np.ndarray] | None = None):
        self.faces, self.indices = faces, np.asarray(indices, dtype=np.int64)
        self.labels = {"attributes": faces.labels["attributes"][self.indices],
                       **{k: np.asarray(v) for k, v in (extra_labels or {}).items()}}

    def get_example(self, i: int) -> dict:
        return self.faces.get_example(int(self.indices[i]))

    def __len__(self) -> int:
        return len(self.indices)


def draw_groups(groups: np.ndarray, counts: Sequence[Sequence[int]], rng: np.random.Generator,
                allow_fewer: bool = False) -> list[list[np.ndarray]]:
    """For each round of per-group counts, distinct example indices of each group (no index is drawn twice)."""
    order = rng.permutation(len(groups))
    taken = np.zeros(len(groups), dtype=bool)
    rounds = []
    for round_counts in counts:
        chosen_per_group = []
        for group, count in enumerate(round_counts):
            candidates = order[np.flatnonzero(~taken[order] & (groups[order] == group))]
            if len(candidates) < count and not allow_fewer:
                raise ValueError(f"group {group} has only {len(candidates)} more examples but {count} are needed; "
                                 f"lower Data/size or Data/balanced_size (or set Data/allow_fewer for test data)")
            if len(candidates) < count:
                warnings.warn(f"group {group}: {len(candidates)} examples instead of {count} (Data/allow_fewer)")
            chosen = candidates[:count]
            taken[chosen] = True
            chosen_per_group.append(chosen)
        rounds.append(chosen_per_group)
    return rounds


def celeba_selection(faces: CelebA, chosen_per_group: list[np.ndarray], names, reference: int) -> CelebASelection:
    indices = np.concatenate(chosen_per_group).astype(np.int64)
    groups = np.concatenate([np.full(len(c), g, dtype=np.int64) for g, c in enumerate(chosen_per_group)])
    return CelebASelection(faces, indices, {"group": groups, "reference": np.full(len(indices), reference)})


def celeba_biased_and_reference(options: DataOptions, pool: str, perc: float, size: int, balanced_size: int | None,
                                purpose: str) -> tuple[CelebASelection, CelebASelection]:
    names = bias_attributes(options)
    faces = CelebA(CELEBA_POOLS[pool], root=options.data_root, size=options.image_size)
    groups = group_labels(faces.labels["attributes"], names, CELEBA_ATTRIBUTES)
    n_groups = 2 ** len(names)
    balanced_size = size if balanced_size is None else balanced_size
    reference_counts = [int(balanced_size / n_groups * perc)] * n_groups
    biased_counts = amnist.split_counts(size, amnist.BIAS_SETTINGS[options.setting])
    reference, biased = draw_groups(groups, [reference_counts, biased_counts],
                                    np.random.default_rng(stream_seed(options, purpose)), options.allow_fewer)
    return (celeba_selection(faces, biased, names, 0), celeba_selection(faces, reference, names, 1))


def celeba_balanced(options: DataOptions, pool: str, size: int, purpose: str) -> CelebASelection:
    names = bias_attributes(options)
    faces = CelebA(CELEBA_POOLS[pool], root=options.data_root, size=options.image_size)
    groups = group_labels(faces.labels["attributes"], names, CELEBA_ATTRIBUTES)
    n_groups = 2 ** len(names)
    (chosen,) = draw_groups(groups, [[size // n_groups] * n_groups],
                            np.random.default_rng(stream_seed(options, purpose)), options.allow_fewer)
    return celeba_selection(faces, chosen, names, 0)


# --- both datasets ---------------------------------------------------------------------------------------------

def biased_and_reference(options: DataOptions, pool: str = "train", perc: float | None = None,
                         size: int | None = None, balanced_size: int | None = None, purpose: str = "train"):
    """The (biased, reference) datasets of the ``Data`` options (or of the given overrides)."""
    perc = options.perc if perc is None else perc
    size = int(options.size if size is None else size)
    balanced_size = options.balanced_size if balanced_size is None and purpose == "train" else balanced_size
    if options.dataset == "celeba":
        return celeba_biased_and_reference(options, pool, perc, size, balanced_size, purpose)
    return amnist.make_biased_and_reference(options.setting, perc, size, balanced_size, bias_attributes(options),
                                            pool, stream_seed(options, purpose), options.image_size,
                                            options.data_root, float(options.colour_spread))


def balanced(options: DataOptions, pool: str, size: int, purpose: str):
    """A set with equally many examples of every bias group (``group`` label included)."""
    if options.dataset == "celeba":
        return celeba_balanced(options, pool, size, purpose)
    cells = amnist.group_cells(bias_attributes(options))
    return amnist.make_cells(cells, amnist.split_counts(size, [1.0] * len(cells)), pool,
                             stream_seed(options, purpose), options.image_size, options.data_root,
                             float(options.colour_spread))


class ClassBalancedPairs(DatasetMixin):
    """Batches with as many ``second`` (label 1) as ``first`` (label 0) examples: index i gives first[i mod n0]
    and second[i mod n1], so an epoch runs over the larger part and cycles through the smaller one; a shuffled
    index order gives every batch a fresh mix. The batch holds both halves, first then second, with ``reference``
    = 0 / 1 (a batch of B indices has 2B examples)."""

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.labels = {}

    def __len__(self) -> int:
        return max(len(self.first), len(self.second))

    def get_batch(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        halves = [fetch_batch(part, indices % len(part)) for part in (self.first, self.second)]
        keys = (set(halves[0]) & set(halves[1])) - {"index_", "reference"}
        batch = {k: torch.cat([torch.as_tensor(h[k]) for h in halves]) for k in keys}
        batch["reference"] = torch.cat([torch.zeros(len(indices), dtype=torch.long),
                                        torch.ones(len(indices), dtype=torch.long)])
        batch["index_"] = torch.as_tensor(indices)
        return batch

    def get_example(self, i: int) -> dict:
        return {k: v[0] for k, v in self.get_batch([i]).items()}


# --- config classes ---------------------------------------------------------------------------------------------

def GANTrain(config: Mapping | None = None) -> ConcatenatedDataset:
    """Reference examples, then biased ones: what the GAN trains on (index i is the same example for every stage)."""
    biased, reference = biased_and_reference(data_options(config))
    return ConcatenatedDataset(reference, biased)


def RatioTrain(config: Mapping | None = None) -> ClassBalancedPairs:
    """Biased (0) and reference (1) examples in class-balanced batches, for the density-ratio classifier."""
    biased, reference = biased_and_reference(data_options(config))
    return ClassBalancedPairs(biased, reference)


def RatioValidation(config: Mapping | None = None) -> ConcatenatedDataset:
    """Held-out biased and reference examples, ``eval_size`` of each (the reference balanced over the groups), so
    that the classifier's p(reference | x) is calibrated at the 50/50 prior it was trained at; in a seeded mixed
    order, so that any prefix (``eval_max_batches``) holds both."""
    options = data_options(config)
    biased, reference = biased_and_reference(options, "validation", perc=1.0, size=options.eval_size,
                                             balanced_size=options.eval_size, purpose="ratio_validation")
    order = np.random.default_rng(stream_seed(options, "ratio_validation")).permutation(len(biased) + len(reference))
    return ConcatenatedDataset(reference, biased, order=order)


def BalancedValidation(config: Mapping | None = None):
    options = data_options(config)
    return balanced(options, "validation", int(options.eval_size), "validation")


def BalancedTest(config: Mapping | None = None):
    options = data_options(config)
    return balanced(options, "test", int(options.eval_size), "test")


def AttributeTrain(config: Mapping | None = None):
    """The attribute classifier's training data: ``attribute_train_size`` balanced Attribute MNIST digits, or
    CelebA's train split (a seeded subset of ``attribute_train_size`` faces; null for all of them)."""
    options = data_options(config)
    if options.dataset == "celeba":
        size = options.attribute_train_size
        return CelebA("train", root=options.data_root, size=options.image_size, subset=size,
                      subset_seed=None if size is None else int(options.seed))
    return balanced(options, "train", int(options.attribute_train_size), "attribute_train")
