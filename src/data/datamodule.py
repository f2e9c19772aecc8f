"""LightningDataModule around a train and a validation dataset built by Hydra.

Randomness in workers: torch seeds each DataLoader worker with `base_seed + worker_id`, where `base_seed` is
drawn from the main process's torch generator; the datasets seed their numpy generators from
`torch.initial_seed()`. So augmentations and degradation draws differ between workers and epochs, and the whole
stream repeats given the global seed (`seed_everything(seed)` / `torch.manual_seed`).

Streamed data (a dataset whose source is "shards:..." or "hf-stream:...", or any IterableDataset): the dataset is
wrapped in restoregan.data.shards.StreamingDataset, which splits it over DDP ranks and workers and shuffles in a
bounded buffer; there is no length, so training is bounded by max_steps (train.py sets it).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


class SRDataModule(pl.LightningDataModule):
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

    def train_dataloader(self) -> DataLoader:
        self._place(self.train_set)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=None if isinstance(self.train_set, IterableDataset) else True,
            drop_last=True,  # equal batch sizes keep batch statistics and the GAN balance steady
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
