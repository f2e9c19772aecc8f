"""The temporal film restorer through the shared trainer: each schedule phase for a step (with the per-frame and the
temporal discriminator), validation on clips, and an export that loads as a restore model taking clips."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from restoregan.gans.temporal_restorer import takes_clips
from restoregan.models import load_model
from restoregan.tasks.restore_video import VideoRestorationTask
from restoregan.training.run import train
from test_colorize_train import _same, _Snapshots
from train_utils import compose_train, tiny_overrides


@pytest.mark.parametrize("temporal_d", [False, True])
def test_each_phase_trains_what_it_should_and_exports_a_clip_model(temporal_d: bool, tmp_path: Path,
                                                                   monkeypatch) -> None:
    import restoregan.training.run as run_mod

    snaps = _Snapshots()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [snaps])
    overrides = tiny_overrides(tmp_path, "film_restore_video_quickstart") + [
        "data.train.repeat=2", "model.grid_images=1", "data.train.optional_sources=[]", "data.train.cache=false",
        "data.train.frames=3", "data.val.repeat=1", "generator.num_feat=8", "generator.num_blocks=1",
        "pretrain_iters=1", "d_pretrain_iters=1", "gan_iters=1", "val_every=3"]
    if temporal_d:
        overrides += ["task.temporal_discriminator=true", "discriminator=temporal_small",
                      "discriminator.num_in_ch=18", "discriminator.num_feat=8"]
    result = train(compose_train(overrides))
    (g0, g1, g2, g3), (d0, d1, d2, d3) = snaps.g, snaps.d
    assert not _same(g0, g1) and _same(d0, d1), "phase 1: generator only"
    assert _same(g1, g2) and not _same(d1, d2), "phase 2: discriminator only, generator frozen"
    assert not _same(g2, g3) and not _same(d2, d3), "phase 3: both"
    assert (type(result.module.net_d).__name__ == "TemporalPatchDiscriminator") is temporal_d
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in ("train/g_pix", "train/g_adv", "train/d_real", "val/psnr", "val/psnr_damaged",
                "val/psnr_temporal_median"):
        assert any(key == k for r in rows for k, v in r.items() if v), f"{key} not logged"

    loaded = load_model(f"{result.export}.safetensors")
    assert isinstance(loaded.task, VideoRestorationTask) and takes_clips(loaded.net)
    clip = torch.rand(1, 4, 3, 24, 40)
    with torch.no_grad():
        assert torch.allclose(loaded.net(clip), result.module.net_g_eval.cpu()(clip), atol=1e-5)
