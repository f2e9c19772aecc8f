"""A training progress bar counted in iterations (batches), labelled with the current phase.

Lightning's bar counts optimizer steps within an epoch ("Epoch 0/-2 10/14" when a GAN batch takes two steps
and max_epochs is unset), which says nothing useful about a step-budgeted GAN run.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

PHASE_NAMES = {1: "pretrain G", 2: "pretrain D", 3: "GAN"}


class IterationProgressBar(RichProgressBar):
    def __init__(self, total_iterations: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.total_iterations = total_iterations

    @property
    def total_train_batches(self) -> int:
        return self.total_iterations

    def _get_train_description(self, current_epoch: int) -> str:
        phase = getattr(self.trainer.lightning_module, "phase", None)
        return f"{PHASE_NAMES.get(phase, 'train'):{len(self.validation_description)}}"

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.is_disabled:
            return
        if self.train_progress_bar_id is None:  # resumed mid-epoch
            self._initialize_train_progress_bar_id()
        if self.progress is not None:
            self.progress.update(
                self.train_progress_bar_id,
                completed=int(pl_module.iteration),
                total=self.total_iterations,
                description=self._get_train_description(trainer.current_epoch),
            )
        self._update_metrics(trainer, pl_module)
        self.refresh()
