"""edflow.data.fetch_batch: whole-batch indexing where a dataset has it, else its examples collated."""
import numpy as np
import pytest
import torch

from edflow.data import ArrayDataset, fetch_batch


class Examples:
    """A dataset without get_batch whose examples carry an entry that does not stack (varying length)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": np.full((1, 2, 2), i, np.float32), "s": i % 2, "tokens": list(range(i))}


def test_whole_batches_come_from_get_batch():
    data = ArrayDataset({"image": torch.arange(12.0).reshape(6, 2), "label": torch.arange(6)})
    calls = []
    get_batch = data.get_batch
    data.get_batch = lambda indices: calls.append(list(indices)) or get_batch(indices)
    batch = fetch_batch(data, np.array([4, 1]))
    assert calls == [[4, 1]]
    assert batch["label"].tolist() == [4, 1] and batch["image"][0].tolist() == [8.0, 9.0]


def test_examples_are_collated_in_the_order_asked():
    batch = fetch_batch(Examples(), np.array([3, 0]), keys=("image", "s"))
    assert sorted(batch) == ["image", "s"]
    assert batch["image"][:, 0, 0, 0].tolist() == [3.0, 0.0] and batch["s"].tolist() == [1, 0]


def test_keys_leave_out_what_would_not_stack():
    with pytest.raises(RuntimeError):  # the ragged "tokens" lists cannot be collated: hence keys
        fetch_batch(Examples(), [1, 2])
    assert fetch_batch(Examples(), [1, 2], keys=("image", "missing"))["image"].shape == (2, 1, 2, 2)
