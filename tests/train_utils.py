"""Compose the real training config and shrink it to a few CPU steps on 32x32 patches."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_overrides(run_dir: Path, experiment: str = "sr_quickstart") -> list[str]:
    return [
        f"experiment={experiment}",
        f"run_dir={run_dir}",
        "logger=csv",
        "pretrain_iters=2",
        "gan_iters=2",
        "val_every=2",
        "data.crop_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.val.crop_size=32",
        "pretrained_backbones=false",
        "trainer.accelerator=cpu",
        "+trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
    ]


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


class Crash(pl.Callback):
    """A kill, in-process: an exception before the batch after `at` iterations."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if int(module.iteration) == self.at:
            raise RuntimeError("killed")
