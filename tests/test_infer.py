"""Tiled inference equals untiled; infer.py names outputs, never overwrites inputs, fails in one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from conftest import ROOT
from restoregan.inference.tiled import apply_tiled


def _conv_net(scale: int = 2, in_ch: int = 3) -> nn.Module:
    """Three 3x3 convs: receptive field radius 3 input pixels, then pixel shuffle."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_ch, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale),
    )  # fmt: skip


class UnshuffleNet(nn.Module):
    """x2 like RRDBNet x2: pixel-unshuffle by 2 first (so sides must be even), then x4 shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _conv_net(scale=4, in_ch=12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(nn.functional.pixel_unshuffle(x, 2))


def _image(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (9, 40)])
@pytest.mark.parametrize("tile", [8, 11, 16])
def test_tiled_equals_untiled(size: tuple[int, int], tile: int) -> None:
    net, x = _conv_net(), _image(2, 3, *size)
    full = apply_tiled(net, x, 2)
    tiled = apply_tiled(net, x, 2, tile=tile, overlap=3)
    assert tiled.shape == (2, 3, size[0] * 2, size[1] * 2) and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, full, atol=1e-6, rtol=0)


def test_overlap_below_receptive_field_is_detected() -> None:
    """The equality test is sensitive: too little context changes pixels near tile seams."""
    net, x = _conv_net(), _image(1, 3, 37, 53)
    assert (apply_tiled(net, x, 2, tile=8, overlap=1) - apply_tiled(net, x, 2)).abs().max() > 1e-3


def test_tile_larger_than_image_and_unbatched_input() -> None:
    net, x = _conv_net(), _image(3, 13, 7)
    full = apply_tiled(net, x, 2)
    assert full.shape == (3, 26, 14)
    assert torch.equal(apply_tiled(net, x, 2, tile=512, overlap=32), full)
    assert torch.equal(apply_tiled(net, x, 2, tile=32, overlap=32, half=True), full)  # fp16 only on CUDA


def test_pad_multiple_for_pixel_unshuffle_nets() -> None:
    net, x = UnshuffleNet(), _image(1, 3, 23, 31)  # odd sides
    full = apply_tiled(net, x, 2, pad_multiple=2)
    assert full.shape == (1, 3, 46, 62)
    torch.testing.assert_close(apply_tiled(net, x, 2, tile=9, overlap=8, pad_multiple=2), full, atol=1e-6, rtol=0)


def test_wrong_scale_is_reported() -> None:
    with pytest.raises(ValueError, match="not scale=4"):
        apply_tiled(_conv_net(), _image(1, 3, 8, 8), 4)


# --- infer.py -------------------------------------------------------------------------------------------------


def _infer_module():
    spec = importlib.util.spec_from_file_location("infer_script", ROOT / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path: Path, h: int = 12, w: int = 10, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_output_naming_and_no_overwrite(tmp_path: Path) -> None:
    infer = _infer_module()
    a, b = tmp_path / "in" / "a.png", tmp_path / "in" / "b.jpg"
    out = tmp_path / "out"
    assert infer.output_paths([a, b], out, "_x4") == [out / "a_x4.png", out / "b_x4.png"]
    # an input already named like an output, written into its own folder
    clash = tmp_path / "in" / "a_x4.png"
    with pytest.raises(ValueError, match="overwrite an input") as info:
        infer.output_paths([a, clash], tmp_path / "in", "_x4")
    assert str(info.value).startswith(str(clash)) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="same stem"):
        infer.output_paths([a, tmp_path / "in" / "a.jpg"], tmp_path / "out", "_x4")


def _tiny_export(path: Path) -> Path:
    """A small x4 RRDBNet exported the way train.py does; returns the .safetensors path."""
    from restoregan.gans.checkpoint import save_export
    from restoregan.gans.rrdbnet import RRDBNet
    from restoregan.tasks.sr import SuperResolutionTask

    kwargs = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    torch.manual_seed(0)
    net = RRDBNet(**kwargs)
    task = SuperResolutionTask(scale=4)
    return save_export(path, net, {"_target_": "restoregan.gans.rrdbnet.RRDBNet", **kwargs},
                       {"task": task.config(), "scale": 4})


def _cfg(**overrides: object):
    base = OmegaConf.load(ROOT / "conf" / "infer.yaml")
    base.pop("defaults")
    base.pop("hydra")
    return OmegaConf.merge(base, overrides)


def test_bad_input_file_is_one_line_error(tmp_path: Path) -> None:
    infer = _infer_module()
    ckpt = _tiny_export(tmp_path / "tiny")
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(ValueError) as info:
        infer.infer(_cfg(ckpt=str(ckpt), input=str(bad), output=str(tmp_path / "out"), device="cpu"))
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="input not found"):
        infer.infer(_cfg(ckpt=str(ckpt), input=str(tmp_path / "nope.png"), output=str(tmp_path / "o"), device="cpu"))


@pytest.mark.slow
def test_cli_upscales_a_folder(tmp_path: Path) -> None:
    ckpt = _tiny_export(tmp_path / "tiny")
    _png(tmp_path / "in" / "a.png", 12, 10, 0)
    _png(tmp_path / "in" / "b.png", 7, 9, 1)
    cmd = [sys.executable, str(ROOT / "infer.py"), f"ckpt={ckpt}", f"input={tmp_path / 'in'}",
           f"output={tmp_path / 'out'}", "tile=4", "tile_overlap=4", "device=cpu"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "out") in done.stdout
    with Image.open(tmp_path / "out" / "a_x4.png") as a, Image.open(tmp_path / "out" / "b_x4.png") as b:
        assert a.size == (40, 48) and b.size == (36, 28)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", *sorted(p.name for p in tmp_path.glob("tiny*"))]

    # writing next to the inputs with an input already named like an output: refused, nothing written
    _png(tmp_path / "in" / "a_x4.png")
    cmd[4] = f"output={tmp_path / 'in'}"
    refused = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'in' / 'a_x4.png'}: output would overwrite an input; choose another output name or folder"
    ]


def test_task_options_reach_the_models_task_on_video(runs: Path, tmp_path: Path) -> None:
    """`task=interp task.factor=4` is laid over the interp model's task: its suffix and 4x the frames."""
    from cli_utils import infer_in_process
    from pipeline_utils import moving_clip, streams, write_clip

    clip = write_clip(tmp_path / "reel.mp4", moving_clip(3), fps=12)
    model = runs / "tiny_interp" / "export" / "generator.safetensors"
    (out,) = infer_in_process([f"ckpt={model}", f"input={clip}", f"output={tmp_path / 'out'}", "task=interp",
                               "task.factor=4", "video.contact_frames=0"])
    assert out == tmp_path / "out" / "reel_x4.mp4"
    got = streams(out)
    assert got["frames"] == 12 and np.allclose(np.diff(got["times"]), 1 / 48, atol=1e-6)
