"""Latent de-biasing's datasets: real images with a target and protected attribute(s), and the synthetic images of
the synthetic stage.

Every dataset reads the run config's ``Data`` section (:data:`DATA_DEFAULTS`), so all stages of one experiment see
the same images. Examples hold ``image`` (float32 (3, H, W) in [-1, 1]), one int64 label per attribute named by
the attribute (e.g. ``digit_group``, ``colour``; ``Smiling``, ``Male``) and ``synthetic`` (1 for generated images).

- Attribute MNIST (:mod:`fairkit.data.attribute_mnist`, the CPU-scale stand-in): ``train``, ``validation`` and
  ``test_biased`` have target and protected attribute correlated (``Data/correlation``), ``test`` is balanced
  (all four (target, protected) cells equally large).
- CelebA: its train / valid / test splits (``test_biased`` is the test split too: CelebA's test set is biased).

Config classes: :func:`Train`, :func:`Validation`, :func:`Test`, :func:`TestBiased`, :func:`AugmentedTrain`
(real training images + the synthetic stage's images) and :class:`LatentIndices` (the synthetic stage's work list).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import torch

from edflow.config import ConfigError, section
from edflow.data import fetch_batch
from edflow.data.dataset import ArrayDataset, ConcatenatedDataset, DatasetMixin
from edflow.first_stage import is_single_stage, resolve_run, run_folder_of
from fairkit.data import attribute_mnist as amnist
from fairkit.data.celeba import CELEBA_ATTRIBUTES, CelebA

DATASETS = ("attrmnist", "celeba")
DATA_DEFAULTS = {
    "dataset": "attrmnist",      # attrmnist | celeba
    "target": "digit_group",
    "protected": "colour",       # a name, or a list of names; the first is the group of the fairness metrics
    "correlation": 0.8,          # attrmnist: Pearson correlation of target and protected (train/validation/test_biased)
    "colour_spread": 0.0,        # attrmnist: inks mixed along green-red (fairkit.data.attribute_mnist)
    "train_size": 10000,         # attrmnist: digits per set (null: as many as the pool allows)
    "validation_size": 2000,
    "test_size": 4000,
    "subset": None,              # celeba: only the first `subset` faces of each split
    "image_size": 32,
    "crop": None,                # celeba: side of the centre square cut before resizing (default: fairkit's)
    "seed": 0,                   # fixes which digits are drawn (not the model's seed)
    "data_root": None,           # default: the config's data_root, else env FAIRKIT_DATA, else data/
}
AUGMENT_DEFAULTS = {
    "stage": "synthetic",        # the first stage (by its name in first_stage) whose synthetic images are added
    "sources": None,             # rows of the synthetic set to add (default: all), a subset of SOURCES
}
SPLITS = ("train", "validation", "test", "test_biased")
STREAMS = {"train": 1, "validation": 2, "test": 3, "test_biased": 4}  # independent draws per split
CELEBA_SPLITS = {"train": "train", "validation": "valid", "test": "test", "test_biased": "test"}
# The synthetic stage's output, inside its run folder, and the kinds of rows it holds.
SYNTHETIC_FILE = os.path.join("synthetic", "synthetic.npz")
SOURCES = ("sampled", "complement", "inverted", "inverted_complement")


def attribute_names(dataset: str) -> tuple[str, ...]:
    return amnist.ATTRIBUTES if dataset == "attrmnist" else CELEBA_ATTRIBUTES


def data_options(config: Mapping | None) -> dict:
    """The ``Data`` section with defaults; ``protected`` becomes a tuple of names; names are checked."""
    options = section(config or {}, "Data", DATA_DEFAULTS)
    if options["dataset"] not in DATASETS:
        raise ConfigError(f"Data/dataset {options['dataset']!r} is not one of {DATASETS}")
    protected = options["protected"]
    options["protected"] = (protected,) if isinstance(protected, str) else tuple(protected or ())
    known = attribute_names(options["dataset"])
    names = (options["target"], *options["protected"])
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"Data/target or Data/protected name {unknown}, which are not attributes of "
                          f"{options['dataset']}; known: {known}")
    if not options["protected"] or len(set(names)) != len(names):
        raise ConfigError(f"Data needs a target and at least one protected attribute, all different; got target "
                          f"{options['target']!r}, protected {list(options['protected'])}")
    if options["data_root"] is None:
        options["data_root"] = (config or {}).get("data_root")
    return options


def role_names(options: Mapping) -> tuple[str, ...]:
    """The labelled attributes of every example: the target, then the protected attribute(s)."""
    return (options["target"], *options["protected"])


class NamedLabels(DatasetMixin):
    """``data``'s images with the columns ``names`` of its ``attributes`` label as labels of those names, and
    ``synthetic`` = 0. Whole-batch access when ``data`` has it (in-memory Attribute MNIST)."""

    def __init__(self, data: DatasetMixin, names: Sequence[str], all_names: Sequence[str]):
        self.data = data
        self.columns = {name: list(all_names).index(name) for name in names}
        attributes = np.asarray(data.labels["attributes"])
        self.labels = {**{name: attributes[:, c] for name, c in self.columns.items()},
                       "synthetic": np.zeros(len(data), dtype=np.int64)}
        if hasattr(data, "get_batch"):
            self.get_batch = self._get_batch

    def get_example(self, i: int) -> dict:
        return {"image": self.data[i]["image"]}  # the labels are merged in by DatasetMixin.__getitem__

    def _get_batch(self, indices) -> dict:
        batch = fetch_batch(self.data, indices)
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        named = {name: torch.as_tensor(batch["attributes"])[:, c] for name, c in self.columns.items()}
        return {"image": batch["image"], **named, "synthetic": torch.zeros(len(index), dtype=torch.long),
                "index_": index}

    def __len__(self) -> int:
        return len(self.data)


def attrmnist_split(options: Mapping, split: str):
    size_key = {"train": "train_size", "validation": "validation_size"}.get(split, "test_size")
    pool = "validation" if split == "validation" else ("train" if split == "train" else "test")
    correlation = 0.0 if split == "test" else float(options["correlation"])
    return amnist.CorrelatedAttributeMNIST(pool, options[size_key], options["target"], options["protected"][0],
                                           correlation, [int(options["seed"]), STREAMS[split]],
                                           int(options["image_size"]), options["data_root"],
                                           colour_spread=float(options["colour_spread"]))


def celeba_split(options: Mapping, split: str):
    return CelebA(CELEBA_SPLITS[split], root=options["data_root"], size=int(options["image_size"]),
                  crop=options["crop"], subset=options["subset"])


def real_split(options: Mapping, split: str) -> NamedLabels:
    """One split of the real data, with the target and protected attributes as named labels."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    if options["dataset"] == "attrmnist" and len(options["protected"]) > 1:
        raise ConfigError("Attribute MNIST has two attributes, so one target and one protected attribute; "
                          "two protected attributes need CelebA")
    data = attrmnist_split(options, split) if options["dataset"] == "attrmnist" else celeba_split(options, split)
    return NamedLabels(data, role_names(options), attribute_names(options["dataset"]))


def Train(config: Mapping | None = None) -> NamedLabels:
    return real_split(data_options(config), "train")


def Validation(config: Mapping | None = None) -> NamedLabels:
    return real_split(data_options(config), "validation")


def Test(config: Mapping | None = None) -> NamedLabels:
    """Attribute MNIST: balanced over (target, protected); CelebA: its test split."""
    return real_split(data_options(config), "test")


def TestBiased(config: Mapping | None = None) -> NamedLabels:
    """Attribute MNIST: correlated as the training set (where bias amplification has a direction); CelebA: test."""
    return real_split(data_options(config), "test_biased")


# --- synthetic images ------------------------------------------------------------------------------------------

class SyntheticImages(ArrayDataset):
    """Generated images kept as uint8 (M, 3, H, W), served as float32 in [-1, 1], with named labels."""

    def __init__(self, images: np.ndarray, labels: Mapping[str, np.ndarray]):
        super().__init__({"image": torch.as_tensor(np.asarray(images, dtype=np.uint8)),
                          **{name: np.asarray(values, dtype=np.int64) for name, values in labels.items()},
                          "synthetic": np.ones(len(images), dtype=np.int64)})

    def process_batch(self, batch: dict) -> dict:
        return {**batch, "image": batch["image"].float() / 127.5 - 1.0}


def stage_spec(config: Mapping, name: str) -> Mapping:
    stages = config.get("first_stage") or {}
    spec = stages if is_single_stage(stages) else stages.get(name)
    if not spec or "run" not in spec:
        raise ConfigError(f"the augmented training set needs the synthetic stage as first_stage/{name} with a "
                          f"`run:` (e.g. first_stage: {{{name}: {{run: <synthetic run>}}}}); got {dict(stages)!r}")
    return spec


def synthetic_file(config: Mapping, name: str) -> str:
    """The synthetic set written by the first stage ``name`` (a synthetic stage run)."""
    run = run_folder_of(resolve_run(str(stage_spec(config, name)["run"])))
    path = os.path.join(run, SYNTHETIC_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: the synthetic stage run {run} has not finished its epoch "
                                f"(resume it with `edflow -p {run} -t`)")
    return path


def load_synthetic(path: str, options: Mapping, sources: Sequence[str] | None = None) -> SyntheticImages:
    """The rows of a synthetic set whose source is in ``sources`` (default: all), labelled with the target and
    protected attributes of ``options``."""
    unknown = sorted(set(sources or ()) - set(SOURCES))
    if unknown:
        raise ConfigError(f"Augment/sources {unknown} are not among {SOURCES}")
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    names = [str(n) for n in arrays["protected_names"]]
    if str(arrays["target_name"]) != options["target"] or names != list(options["protected"]):
        raise ConfigError(f"{path} is labelled for target {str(arrays['target_name'])!r} and protected {names}, "
                          f"but this run's Data asks for {options['target']!r} and {list(options['protected'])}")
    if arrays["image"].shape[-1] != int(options["image_size"]):
        raise ConfigError(f"{path} holds {arrays['image'].shape[-1]}-pixel images but Data/image_size is "
                          f"{options['image_size']}; the GAN and the classifiers must use one image size")
    keep = np.isin(arrays["source"], [SOURCES.index(s) for s in (sources or SOURCES)])
    labels = {options["target"]: arrays["target"][keep],
              **{name: arrays["protected"][keep, k] for k, name in enumerate(names)}}
    return SyntheticImages(arrays["image"][keep], labels)


def AugmentedTrain(config: Mapping | None = None) -> ConcatenatedDataset:
    """The real training images followed by the synthetic stage's images (``Augment`` section)."""
    options = data_options(config)
    augment = section(config or {}, "Augment", AUGMENT_DEFAULTS)
    synthetic = load_synthetic(synthetic_file(config or {}, augment["stage"]), options, augment["sources"])
    return ConcatenatedDataset(real_split(options, "train"), synthetic)


class LatentIndices(ArrayDataset):
    """The synthetic stage's training set: the indices 0..num_samples-1 of the latents it generates and labels."""

    def __init__(self, num_samples: int = 10000, config: Mapping | None = None):
        if int(num_samples) < 2:
            raise ConfigError(f"the synthetic stage needs at least 2 latents, got num_samples={num_samples}")
        super().__init__({"latent_index": np.arange(int(num_samples), dtype=np.int64)})
