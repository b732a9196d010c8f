"""Resumable, worker-independent data order.

``EpochBatchSampler`` yields the batches of one epoch (a permutation seeded by
(seed, epoch)), starting at any batch; each item is ``(index, item_seed)``.
``SeededDataset`` seeds torch / numpy / random from ``item_seed`` before calling the
wrapped dataset, so a sample (including random augmentation) depends only on
(seed, epoch, position) -- not on which worker loads it or on what ran before. That
makes ``--resume`` exact with any number of workers.

Distributed (``rank``/``world_size``): batch b of the epoch is the global batch of
``batch_size * world_size`` consecutive positions of the same permutation, and rank r
takes its r-th slice of ``batch_size``. The ranks' shares are disjoint, their union is
what one process with the global batch size sees (same items, same item seeds), and
``start_batch`` resumes every rank at the same global step.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

_MIX = 0x9E3779B97F4A7C15


def item_seed(seed: int, epoch: int, position: int) -> int:
    return (seed * 1_000_003 + epoch * _MIX + position * 2_654_435_761) % (2**31 - 1)


class EpochBatchSampler(Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if world_size > 1 and not drop_last:
            raise ValueError("drop_last=False is single-process only (ranks must take the same number of steps)")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start_batch, self.shuffle, self.drop_last = start_batch, shuffle, drop_last
        self.rank, self.world_size = rank, world_size

    def num_batches(self) -> int:
        gb = self.batch_size * self.world_size
        return self.n // gb if self.drop_last else -(-self.n // gb)

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.start_batch)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        gb = self.batch_size * self.world_size
        for b in range(self.start_batch, self.num_batches()):
            first = b * gb + self.rank * self.batch_size
            pos = range(first, min(self.n, first + self.batch_size))
            yield [(order[p], item_seed(self.seed, self.epoch, p)) for p in pos]


class SeededDataset(Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    @staticmethod
    def _split(item) -> tuple[int, int]:
        """(index, seed) of a sampler item; a bare index is its own seed."""
        return item if isinstance(item, tuple) else (item, item)

    def __getitem__(self, item):
        index, seed = self._split(item)
        if get_worker_info() is None:  # main process: leave the training RNG untouched
            st = (torch.get_rng_state(), np.random.get_state(), random.getstate())
            try:
                return self._get(index, seed)
            finally:
                torch.set_rng_state(st[0])
                np.random.set_state(st[1])
                random.setstate(st[2])
        return self._get(index, seed)

    def _get(self, index, seed):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        return self.dataset[index]

    def __getitems__(self, items):
        """A batch at once (DataLoader calls this with a batch's items). A dataset with
        ``get_seeded_batch(indices, seeds)`` builds it in one go -- it must return the
        samples that item-by-item fetching gives with the same seeds, without touching
        the global RNGs; others are fetched item by item."""
        fetch = getattr(self.dataset, "get_seeded_batch", None)
        if fetch is None:
            return [self[item] for item in items]
        pairs = [self._split(item) for item in items]
        return fetch([i for i, _ in pairs], [s for _, s in pairs])


def collate(samples: list[dict]) -> dict:
    """Stack the contract's fields: image uint8 [B,3,H,W], landmarks [B,68,2], pose [B,3],
    identity int64 [B]; ``source`` stays a list."""
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, np.integer)):
            out[k] = torch.tensor(vals, dtype=torch.int64)
        else:
            out[k] = vals
    return out
