"""Datasets in edflow's style: ``get_example(i) -> dict``, ``__len__`` and a ``labels`` dict of arrays.

Examples are dicts of numpy arrays or numbers so that torch's default collate turns a batch into a dict of tensors.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch.utils.data


class DataError(Exception):
    """A dataset that cannot be read as configured; the message names the file or folder and how to fix it."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are in none of the places searched."""


class CorruptDataError(DataError, ValueError):
    """A dataset file exists but is truncated or not in the expected format."""


class DatasetMixin(torch.utils.data.Dataset):
    """Base class: implement ``get_example(i)`` and ``__len__``; optionally fill ``self.labels``.

    ``labels`` maps a name to an array with one entry per example; label values are also merged into every
    example (an example's own keys win).

    As in edflow 0.4, a dataset that wraps another as ``self.data`` gets its length, examples and labels by default.
    """

    def get_example(self, i: int) -> dict:
        if "data" in self.__dict__:
            return self.data[i]
        raise NotImplementedError(f"{type(self).__name__} must implement get_example(i) (or wrap a dataset as "
                                  f"self.data)")

    def __len__(self) -> int:
        if "data" in self.__dict__:
            return len(self.data)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (or wrap a dataset as self.data)")

    @property
    def labels(self) -> dict:
        if "_labels" in self.__dict__:
            return self._labels
        return getattr(self.__dict__.get("data"), "labels", None) or {}

    @labels.setter
    def labels(self, value: dict):
        self._labels = value

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {type(self).__name__} of length {len(self)}")
        example = {key: value[i] for key, value in self.labels.items()}
        example.update(self.get_example(i))
        example.setdefault("index_", i)
        return example


class PRNGMixin:
    """``self.prng``: a numpy RandomState of the process that uses it (a new one in each data-loader worker, so
    workers do not draw the same numbers), as in edflow 0.4. Unlike edflow's, it is seeded from numpy's global
    generator, which the runner seeds from ``seed`` (and torch seeds per worker), so runs repeat."""

    @property
    def prng(self) -> np.random.RandomState:
        pid = os.getpid()
        if self.__dict__.get("_prng_pid") != pid:
            self._prng_pid = pid
            self._prng = np.random.RandomState(np.random.randint(2 ** 31))
        return self._prng


class SubDataset(DatasetMixin):
    """The examples of ``data`` at ``indices``, in that order."""

    def __init__(self, data: DatasetMixin, indices: Sequence[int]):
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = {k: np.asarray(v)[self.indices] for k, v in data.labels.items()}

    def get_example(self, i):
        example = self.data[int(self.indices[i])]
        example["index_"] = i
        return example

    def __len__(self):
        return len(self.indices)


class ConcatenatedDataset(DatasetMixin):
    """Datasets one after the other, or in ``order`` (a permutation of all their examples, e.g. to mix the parts).

    Labels are concatenated where every part has them (images excepted: labels are per-example metadata, and a copy
    of every image would double the memory). When every part has ``get_batch`` (in-memory data), so does this."""

    def __init__(self, *datasets: DatasetMixin, order: np.ndarray | None = None):
        if not datasets:
            raise ValueError("ConcatenatedDataset needs at least one dataset")
        self.datasets = datasets
        self.offsets = np.cumsum([0] + [len(d) for d in datasets])
        self.order = np.arange(self.offsets[-1]) if order is None else np.asarray(order, dtype=np.int64)
        if len(self.order) != self.offsets[-1] or set(self.order.tolist()) != set(range(self.offsets[-1])):
            raise ValueError(f"order must be a permutation of the {self.offsets[-1]} examples' indices")
        shared = set.intersection(*(set(d.labels) - {"image"} for d in datasets))
        self.labels = {k: np.concatenate([np.asarray(d.labels[k]) for d in datasets])[self.order]
                       for k in sorted(shared)}
        if all(hasattr(d, "get_batch") for d in datasets):
            self.get_batch = self._get_batch

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The part and the index within it of each of ``indices``."""
        indices = self.order[indices]
        part = np.searchsorted(self.offsets, indices, side="right") - 1
        return part, indices - self.offsets[part]

    def get_example(self, i):
        part, local = self.locate(np.array([i]))
        example = self.datasets[int(part[0])][int(local[0])]
        example["index_"] = i
        return example

    def _get_batch(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        part, local = self.locate(indices)
        batches = [(np.flatnonzero(part == p), self.datasets[p].get_batch(local[part == p]))
                   for p in range(len(self.datasets)) if np.any(part == p)]
        order = torch.as_tensor(np.argsort(np.concatenate([positions for positions, _ in batches]), kind="stable"))
        keys = set.intersection(*(set(b) for _, b in batches)) - {"index_"}
        batch = {k: torch.cat([torch.as_tensor(b[k]) for _, b in batches])[order] for k in keys}
        batch["index_"] = torch.as_tensor(indices)
        return batch

    def __len__(self):
        return int(self.offsets[-1])


class ProcessedDataset(DatasetMixin):
    """``data`` with ``process(**example) -> dict`` applied; the result updates the example."""

    def __init__(self, data: DatasetMixin, process: Callable[..., dict], update: bool = True):
        self.data = data
        self.process = process
        self.update = update
        self.labels = data.labels

    def get_example(self, i):
        example = self.data[i]
        processed = self.process(**example)
        if self.update:
            example.update(processed)
            return example
        return processed

    def __len__(self):
        return len(self.data)


class ArrayDataset(DatasetMixin):
    """Examples are the rows of equally long arrays held in memory (numpy or torch).

    ``get_batch(indices)`` gathers a whole batch with one indexing operation per array; the runner's data loader
    uses it instead of collating examples one by one, which matters for MNIST-sized data and small models.
    Subclasses that add per-batch processing (noise, colouring) override ``process_batch``.
    """

    def __init__(self, arrays: dict):
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"all arrays need the same length, got {lengths}")
        self.arrays = {k: v if torch.is_tensor(v) else torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}
        self._length = next(iter(lengths.values()), 0)

    @property
    def labels(self) -> dict:
        return {k: v.numpy() for k, v in self.arrays.items()}

    def get_example(self, i):
        return {k: v[0] for k, v in self.process_batch({k: v[i:i + 1] for k, v in self.arrays.items()}).items()}

    def __getitem__(self, i):
        if isinstance(i, (list, tuple, np.ndarray, torch.Tensor)):
            return self.get_batch(i)
        example = super().__getitem__(i)
        return {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in example.items()}

    def get_batch(self, indices) -> dict:
        index = torch.as_tensor(np.ascontiguousarray(indices), dtype=torch.long)
        batch = self.process_batch({k: v[index] for k, v in self.arrays.items()})
        batch.setdefault("index_", index)
        return batch

    def process_batch(self, batch: dict) -> dict:
        return batch

    def __len__(self):
        return self._length


class ExampleDataset(ArrayDataset):
    """Per-example outputs of an evaluation (``data_out`` of a callback): arrays in ``labels``, one row each."""
