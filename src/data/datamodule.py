"""LightningDataModule around a train and a validation dataset built by Hydra, for every task (the datasets
make the task's batches; this module only loads them).

Training data, exactly resumable: the training loader reads one stream of items per rank, shuffled epoch after
epoch (`StreamSampler`): rank r of W takes every W-th position of the global stream, whose position g is item
`permutation(seed, epoch)[g % n]` of epoch g // n. Each item is built inside `item_random(seed, epoch, index)`
(restoregan.data.rng), so its crop, flips and degradation depend on nothing else: not on the worker count, the
worker that builds it, nor on a restart. The loader's state (batches trained, seed) goes into every checkpoint
through Lightning's stateful-loader interface and a resumed run continues the stream where the checkpoint left
it, bit for bit. For Lightning the whole run is one epoch (of max_steps batches), so its epoch counter stays 0.
The seed is the global one (`seed_everything(seed)`, read as torch.initial_seed()) unless `seed` is given.

Streamed data (a dataset whose source is "shards:..." or "hf-stream:...", or any IterableDataset): the dataset is
wrapped in restoregan.data.shards.StreamingDataset, which splits it over DDP ranks and workers and shuffles in a
bounded buffer; there is no length, so training is bounded by max_steps (train.py sets it). A resumed run starts
such a stream over (it is not exactly resumable; a warning says so).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from restoregan.data.rng import item_random


class TrainingDataModule(pl.LightningDataModule):
    """`crop_size` is not used here: it lives at `data.` level so one override (`data.crop_size=96`) reaches
    the datasets (and the VGG discriminator's input size) through interpolation.
    shuffle_buffer: samples held per DataLoader worker to shuffle a streamed training set (memory: this many
    encoded images per worker)."""

    def __init__(
        self,
        train: Dataset,
        val: Dataset,
        batch_size: int = 16,
        val_batch_size: int = 1,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        crop_size: int | None = None,
        shuffle_buffer: int = 256,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        train, val = _streamed(train, shuffle_buffer), _streamed(val, 0)
        if not isinstance(train, IterableDataset) and len(train) < batch_size:
            # drop_last would silently give an empty epoch
            raise ValueError(
                f"the training set holds {len(train)} items, fewer than batch_size {batch_size}; "
                "raise its `repeat` or lower data.batch_size"
            )
        self.train_set, self.val_set = train, val
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        # None = pin when a GPU is present: page-locked batches copy to it asynchronously (a CPU-only run gains
        # nothing from pinning, bench/perf_data.py)
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        if isinstance(self.train_set, IterableDataset):
            return self._stream_loader()
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        seed = torch.initial_seed() if self.seed is None else self.seed
        sampler = StreamSampler(len(self.train_set), seed, self._epoch_batches(world) * self.batch_size, rank, world)
        return ResumableLoader(
            _KeyedItems(self.train_set),
            progress=self._batches_trained,
            sampler=sampler,
            batch_size=self.batch_size,
            drop_last=True,  # equal batch sizes keep batch statistics and the GAN balance steady
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            generator=torch.Generator().manual_seed(seed),  # worker seeds without drawing from the global RNG
        )

    def _epoch_batches(self, world_size: int) -> int:
        """Batches per loader epoch: the whole run (max_steps bounds its batches) under a Trainer, else one pass."""
        max_steps = self.trainer.max_steps if self.trainer is not None else -1
        return max_steps if max_steps > 0 else max(1, len(self.train_set) // (world_size * self.batch_size))

    def _batches_trained(self) -> int:
        """Training batches this run has completed (Lightning's counter; restored on resume)."""
        return self.trainer.fit_loop.total_batch_idx + 1

    def _stream_loader(self) -> DataLoader:
        self._place(self.train_set)
        if self.trainer is not None and self.trainer.ckpt_path:
            warnings.warn(
                f"{self.trainer.ckpt_path}: streamed training data restarts from the beginning of its stream; "
                "the resumed run will not equal an uninterrupted one exactly"
            )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def val_dataloader(self) -> DataLoader:
        # validation items are a function of their index, so worker count does not change them
        self._place(self.val_set)
        streamed = isinstance(self.val_set, IterableDataset)
        workers = self.num_workers if streamed else min(self.num_workers, len(self.val_set))
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            # Starting workers draws their base seed from this generator, not from the global RNG: with persistent
            # workers an uninterrupted run starts them at its first validation only, a resumed run at its first
            # after the resume, and a global draw there would put the two runs' random streams apart
            generator=torch.Generator().manual_seed(0),
        )

    def _place(self, dataset: Any) -> None:
        """Tell a stream its rank from the trainer (authoritative, and reaches workers started by spawn)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and hasattr(dataset, "rank") and hasattr(dataset, "consumer"):
            dataset.rank, dataset.world_size = trainer.global_rank, trainer.world_size


def _streamed(dataset: Dataset, shuffle_buffer: int) -> Dataset:
    """A dataset built from a streamed source, wrapped so it is read as one; others unchanged."""
    if getattr(dataset, "stream", None) is None:
        return dataset
    from restoregan.data.shards import StreamingDataset

    return StreamingDataset(dataset, shuffle_buffer=shuffle_buffer)


class StreamSampler(DistributedSampler):
    """Keys `(seed, epoch, index)` of this rank's share of an endless stream of shuffled epochs over `size` items.

    `length` items make one loader epoch. `start` is this rank's position in the stream: the next iteration
    yields from there to the end of the loader epoch it falls in, the one after that the whole next loader
    epoch, and so on. A DistributedSampler so that Lightning does not replace it under DDP.
    """

    def __init__(self, size: int, seed: int, length: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.size, self.seed, self.length, self.world_size = size, seed, length, world_size
        self.start = 0
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        first = self.start
        self.start = (first // self.length + 1) * self.length
        return (self.key(q) for q in range(first, self.start))

    def key(self, position: int) -> tuple[int, int, int]:
        """The item at this rank's `position`: global stream position g = position * world_size + rank."""
        epoch, offset = divmod(position * self.world_size + self.rank, self.size)
        if self._perm is None or self._perm[0] != epoch:
            # `size` in the seed keeps this stream apart from the items' own (seed, epoch, index < size)
            self._perm = epoch, np.random.default_rng([self.seed, epoch, self.size]).permutation(self.size)
        return self.seed, epoch, int(self._perm[1][offset])


class ResumableLoader(DataLoader):
    """The training DataLoader; Lightning saves its `state_dict()` in checkpoints and hands it back to
    `load_state_dict` on resume, before the first batch is drawn."""

    def __init__(self, *args: Any, progress: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress  # training batches completed when a checkpoint is written

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        return {
            "batches": int(self.progress()),
            "batch_size": int(self.batch_size),
            "seed": int(sampler.seed),
            "size": sampler.size,
            "world_size": sampler.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        now = {"batch_size": self.batch_size, "size": sampler.size, "world_size": sampler.world_size}
        changed = [f"{k} {state[k]} -> {v}" for k, v in now.items() if state.get(k) != v]
        if changed:
            warnings.warn(
                f"training data changed since the checkpoint ({', '.join(changed)}): the resumed run continues "
                "the data stream from its place but will not equal an uninterrupted run"
            )
        sampler.seed = int(state["seed"])
        sampler.start = int(state["batches"]) * self.batch_size


class _KeyedItems(Dataset):
    """Training items built inside `item_random(seed, epoch, index)`, the keys StreamSampler yields."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> Any:
        with item_random(*key):
            return self.dataset[key[2]]
