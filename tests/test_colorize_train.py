"""Colorization through the shared trainer: each schedule phase for a step, both experiments, export."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from restoregan.models import load_model
from restoregan.tasks.colorize import ColorizationTask
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def _overrides(run_dir: Path, experiment: str) -> list[str]:
    return tiny_overrides(run_dir, experiment) + [
        "data.train.short_side=40", "data.val.short_side=32", "data.train.best_of=1", "data.train.repeat=2",
        "model.grid_images=1", "data.train.optional_sources=[]", "data.val.optional_sources=[]", "pretrain_iters=1", "d_pretrain_iters=1", "gan_iters=1", "val_every=3",
    ]


class _Snapshots(pl.Callback):
    """G and D parameters before training and after every batch."""

    def __init__(self) -> None:
        self.g: list[list[torch.Tensor]] = []
        self.d: list[list[torch.Tensor]] = []

    def _take(self, module: pl.LightningModule) -> None:
        self.g.append([p.detach().clone() for p in module.net_g.parameters()])
        self.d.append([p.detach().clone() for p in module.net_d.parameters()])

    def on_train_start(self, trainer, pl_module) -> None:
        self._take(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._take(pl_module)


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("experiment", ["colorize_quickstart", "colorize"])
def test_each_phase_trains_what_it_should_and_exports(experiment: str, tmp_path: Path, monkeypatch) -> None:
    """Phase 1 moves G only, phase 2 D only (G frozen), phase 3 both; the export is a colorizer."""
    import restoregan.training.run as run_mod

    snaps = _Snapshots()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [snaps])
    result = train(compose_train(_overrides(tmp_path, experiment)))
    (g0, g1, g2, g3), (d0, d1, d2, d3) = snaps.g, snaps.d
    assert not _same(g0, g1) and _same(d0, d1), "phase 1: generator only"
    assert _same(g1, g2) and not _same(d1, d2), "phase 2: discriminator only, generator frozen"
    assert not _same(g2, g3) and not _same(d2, d3), "phase 3: both"
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/phase"]) for r in rows if r.get("train/phase")] == [1.0, 2.0, 3.0]
    for key in ("train/g_pix", "train/g_adv", "train/d_real", "train/d_fake", "val/delta_e", "val/delta_e_grey",
                "val/colorfulness", "val/psnr_grey"):
        assert any(key == k for r in rows for k, v in r.items() if v), f"{key} not logged"
    assert sorted((tmp_path / "images").glob("val_iter*.png")), "validation grid: grey | colourised | original"

    loaded = load_model(f"{result.export}.safetensors")
    render_size = 64 if experiment == "colorize_quickstart" else None  # the quickstart stores its scene scale
    assert isinstance(loaded.task, ColorizationTask) and loaded.scale == 1
    assert loaded.task.config() == {"_target_": "restoregan.tasks.colorize.ColorizationTask", "color_space": "yuv",
                                    "render_size": render_size}
    lum = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.net(lum), result.module.net_g_eval.cpu()(lum), atol=1e-5)
    assert load_model(result.last_checkpoint).task.config() == loaded.task.config()
