"""Fetching a batch of examples from any dataset: the one place that decides between a dataset's whole-batch
indexing (``get_batch``) and collating its examples one by one."""
from __future__ import annotations

from typing import Sequence

from torch.utils.data import default_collate

__all__ = ["fetch_batch"]


def fetch_batch(dataset, indices, *, keys: Sequence[str] | None = None) -> dict:
    """The examples ``indices`` of ``dataset`` as one batch: ``dataset.get_batch(indices)`` when it has one (in-memory
    data, every key), else its examples collated with torch's ``default_collate``.

    ``keys``: collate only these keys of each example (those it has), so that other entries that do not stack, or
    that the caller does not need, are left out; whole batches from ``get_batch`` come as the dataset gives them.
    """
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    examples = [dataset[int(i)] for i in indices]
    if keys is not None:
        examples = [{k: example[k] for k in keys if k in example} for example in examples]
    return default_collate(examples)
