"""Batches through torch's DataLoader, in an order that depends only on (seed, epoch) so a resumed run sees the
same batches as an uninterrupted one; under DDP every rank takes its own shard of that order.

Training shards are padded (by wrapping around) so that every rank takes as many steps; evaluation shards are
not, so that every example is evaluated exactly once, whatever the number of ranks."""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler

from edflow.data.batches import fetch_batch


class EpochBatchSampler(Sampler):
    """Index batches of one epoch; ``start`` skips the batches a resumed run has already trained on."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool,
                 rank: int = 0, world_size: int = 1, pad: bool = True):
        if n == 0:
            raise ValueError("the dataset is empty")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size, self.pad = drop_last, rank, world_size, pad
        self.epoch, self.start = 0, 0
        if drop_last and len(self) == 0:
            raise ValueError(f"a dataset of {n} examples gives no full batch of {batch_size} on {world_size} "
                             f"process(es); lower batch_size or set drop_last: false")

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> torch.Tensor:
        if not self.shuffle:
            indices = torch.arange(self.n)
        else:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            indices = torch.randperm(self.n, generator=generator)
        if self.pad and self.world_size > 1:
            indices = torch.cat([indices, indices[: self.per_rank() * self.world_size - self.n]])
        return indices[self.rank:: self.world_size]

    def per_rank(self) -> int:
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        per_rank = self.per_rank()
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def __iter__(self):
        indices = self.order().tolist()
        for b in range(self.start, len(self)):
            yield indices[b * self.batch_size: (b + 1) * self.batch_size]


class _BatchGetter(torch.utils.data.Dataset):
    """Lets a DataLoader ask an in-memory dataset for a whole batch at once."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, indices):
        return fetch_batch(self.dataset, indices)

    def __len__(self):
        return len(self.dataset)


def make_loader(dataset, batch_size: int, shuffle: bool, seed: int, drop_last: bool, num_workers: int = 0,
                pin_memory: bool = False, rank: int = 0, world_size: int = 1, pad: bool = True,
                limit: int | None = None) -> DataLoader:
    """``limit``: use only the first ``limit`` examples of the dataset."""
    n = len(dataset) if limit is None else min(len(dataset), limit)
    sampler = EpochBatchSampler(n, batch_size, shuffle, seed, drop_last, rank, world_size, pad)
    # Each new loader iterator draws a worker seed; from its own generator, so the global RNG (and with it the
    # run's randomness) does not depend on when loaders are started, e.g. on resuming mid-epoch.
    generator = torch.Generator().manual_seed(seed)
    if hasattr(dataset, "get_batch"):
        # Whole batches from memory; workers would only add copies, and the main process keeps RNG use exact.
        return DataLoader(_BatchGetter(dataset), sampler=sampler, batch_size=None, num_workers=0,
                          pin_memory=pin_memory, generator=generator)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      generator=generator)
