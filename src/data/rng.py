"""Randomness of training items.

Inside `item_random(seed, epoch, index)` (TrainingDataModule's loader wraps each item in it) every
`ProcessRandom.get()` returns one generator seeded from that key, so an item's crop, flips and degradation are a
pure function of (seed, epoch, index): the same whatever the worker count, the DDP rank that draws it, or a
restart from a checkpoint. Outside it (a dataset indexed directly, streamed data), each process falls back to its
own generator seeded off torch's initial seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_item: np.random.Generator | None = None  # the generator of the item being built in this process


@contextmanager
def item_random(*key: int) -> Iterator[np.random.Generator]:
    global _item
    previous, _item = _item, np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))
    try:
        yield _item
    finally:
        _item = previous


class ProcessRandom:
    """The item's generator inside `item_random`; else a numpy generator created lazily in each process."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self.rng: np.random.Generator | None = None  # made by the first get() in each process

    def get(self) -> np.random.Generator:
        if _item is not None:
            return _item
        if self._pid != os.getpid():
            self._pid = os.getpid()
            seed = torch.initial_seed() % 2**63
            # DDP ranks share the global seed; with num_workers=0 they would draw identical crops and damage (on
            # different images). Rank 0 keeps the single-process stream, so one-process runs are unchanged.
            rank = _global_rank()
            self.rng = np.random.default_rng(seed if rank == 0 else np.random.SeedSequence([seed, rank]))
        return self.rng


def _global_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))
