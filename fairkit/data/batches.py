"""Fetching a batch of examples from any dataset of the project (whole-batch indexing where the dataset has it)."""
from __future__ import annotations

import numpy as np
from torch.utils.data import default_collate

__all__ = ["fetch_batch"]


def fetch_batch(dataset, indices: np.ndarray) -> dict:
    """A batch of ``dataset``: whole-batch indexing when it has ``get_batch``, else examples collated."""
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    return default_collate([dataset[int(i)] for i in indices])
