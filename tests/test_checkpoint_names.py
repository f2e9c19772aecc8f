"""Checkpoint names count GAN iterations, as the README and the validation grids do (not optimizer steps)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from restoregan.gans.checkpoint import torch_load_weights_only
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def test_checkpoint_names_count_iterations_like_the_validation_grids(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # 2 pretraining iterations (one optimizer step each) + 2 GAN iterations (two steps each): 4 iterations,
        # 6 optimizer steps; validations (and checkpoints) at iterations 2 and 4
        result = train(compose_train(tiny_overrides(tmp_path) + ["generator.num_block=1"]))
    finally:
        torch.set_num_threads(threads)
    assert int(result.module.iteration) == 4 and result.module.global_step == 6
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("iter*.ckpt"))
    assert checkpoints == ["iter0000004.ckpt"], checkpoints  # the newest kept; not iter0000006.ckpt
    grids = {p.name for p in (tmp_path / "images").glob("val_iter*.png")}
    assert grids == {"val_iter0000002.png", "val_iter0000004.png"}, grids
    assert f"val_{checkpoints[0].removesuffix('.ckpt')}.png" in grids
    stored = torch_load_weights_only(tmp_path / "checkpoints" / checkpoints[0])["state_dict"]["iteration"].item()
    assert stored == int(re.fullmatch(r"iter(\d+)\.ckpt", checkpoints[0]).group(1))
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
