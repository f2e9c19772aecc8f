"""Film pipeline stages: order and subsets from config, checkpoint discovery and its errors, segment windows, and
stage outputs against independent references (the net itself, infer.py's interpolation)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_utils import clip_with_cut, write_video
from pipeline_utils import compose_infer, make_export, moving_clip
from restoregan.data.video import SceneCutDetector, iter_frames, probe
from restoregan.evaluation.run import load_models
from restoregan.inference.interp import Interpolator, Resampler, output_frames
from restoregan.inference.tiled import resolve_device
from restoregan.pipeline.checkpoints import MissingCheckpointError, newest_export, resolve_checkpoint
from restoregan.pipeline.run import build_stages, validate_order
from restoregan.pipeline.segments import run_chain, stage_windows
from restoregan.pipeline.stages import ImageStage, InterpolateStage, Item


def _items(frames: list[np.ndarray], tb: Fraction = Fraction(1, 12)) -> list[Item]:
    return [Item(i, i, tb, img) for i, img in enumerate(frames)]


def _stages(runs: Path, overrides: list[str]):
    cfg = compose_infer(["pipeline=film", "device=cpu", f"pipeline.runs_dir={runs}", *overrides])
    order = validate_order(list(cfg.pipeline.order))
    ckpts = {n: resolve_checkpoint(n, cfg.stages[n].ckpt, runs) for n in order}
    return build_stages(cfg, order, ckpts, torch.device("cpu"), False), ckpts


def test_default_order_and_a_subset_from_config(runs: Path) -> None:
    stages, _ = _stages(runs, [])
    assert [s.name for s in stages] == ["restore", "colorize", "upscale", "interpolate"]
    stages, ckpts = _stages(runs, ["pipeline.order=[interpolate,upscale]"])
    assert [s.name for s in stages] == ["interpolate", "upscale"]  # either way round is allowed
    assert ckpts["upscale"] == runs / "tiny_sr" / "export" / "generator.yaml"
    assert stages[1].scale == 2 and stages[0].rate(Fraction(12)) == 24


@pytest.mark.parametrize("order, message", [
    ([], "pipeline.order is empty"),
    (["upscale", "sharpen"], "unknown stage 'sharpen'"),
    (["upscale", "upscale"], "'upscale' appears more than once"),
    (["colorize", "restore"], "restore must come first"),
])
def test_order_is_validated(order: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_order(order)


def test_newest_export_of_the_stage_task_is_the_default(tmp_path: Path) -> None:
    old = make_export(tmp_path, "sr_old", "sr")
    new = make_export(tmp_path, "sr_new", "sr")
    make_export(tmp_path, "colour", "colorize")
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    assert newest_export(tmp_path, "sr") == new
    os.utime(old, (3_000_000, 3_000_000))
    assert resolve_checkpoint("upscale", None, tmp_path) == old
    assert resolve_checkpoint("colorize", None, tmp_path).parent.parent.name == "colour"
    # an explicit checkpoint wins over discovery
    assert resolve_checkpoint("upscale", str(new), tmp_path) == new


def test_missing_checkpoint_names_stage_and_override(tmp_path: Path) -> None:
    make_export(tmp_path, "colour", "colorize")
    with pytest.raises(MissingCheckpointError) as err:
        resolve_checkpoint("upscale", None, tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path)) and "'upscale'" in message and "stages.upscale.ckpt=PATH" in message
    assert "\n" not in message
    with pytest.raises(MissingCheckpointError, match="stages.interpolate.ckpt"):
        resolve_checkpoint("interpolate", str(tmp_path / "nope.safetensors"), tmp_path)


def test_a_checkpoint_of_the_wrong_task_is_refused(runs: Path) -> None:
    colour = runs / "tiny_colorize" / "export" / "generator.yaml"
    with pytest.raises(ValueError, match="a 'colorize' model, but stage 'upscale' needs a 'sr' one"):
        _stages(runs, ["pipeline.order=[upscale]", f"stages.upscale.ckpt={colour}"])


class _Fake:
    def __init__(self, name: str, context: tuple[int, int]) -> None:
        self.name, self.context = name, context


def test_stage_windows_add_each_stage_context() -> None:
    stages = [_Fake("restore", (0, 0)), _Fake("colorize", (8, 0)), _Fake("upscale", (0, 0)), _Fake("interp", (1, 1))]
    # the interpolator needs [s-1, e+1); the stabiliser 8 more before that; restore decodes the same
    assert stage_windows(stages, 48, 96) == [(39, 97), (39, 97), (47, 97), (47, 97)]
    assert stage_windows(stages, 0, 48)[0] == (0, 49)  # clipped at the first frame
    assert stage_windows(stages[:3], 48, 96)[0] == (40, 96)


def test_image_stage_equals_the_net_batched_and_tiled(runs: Path) -> None:
    model = next(iter(load_models([runs / "tiny_sr" / "export" / "generator.yaml"], "cpu").values()))
    frames = moving_clip(5)
    stage = ImageStage("upscale", model, torch.device("cpu"), False, tile=24, overlap=8, batch=2)
    out = list(stage(iter(_items(frames))))
    assert [(it.index, it.pts) for it in out] == [(i, i) for i in range(5)]
    with torch.no_grad():
        ref = model.net(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert out[0].image.shape == (96, 128, 3)
    assert np.abs(np.stack([it.image for it in out]) - ref).max() < 1e-4


def test_interpolate_stage_matches_infer_py_and_segments_do_not_change_it(runs: Path, tmp_path: Path) -> None:
    """Against restoregan.inference.interp (what infer.py runs): same frames, same timestamps, no blend across the
    cut; and the segmented chain (context 1 frame each side) gives the very same frames as one pass."""
    path = runs / "tiny_interp" / "export" / "generator.yaml"
    model = next(iter(load_models([path], "cpu").values()))
    frames = clip_with_cut(4, 4)
    video = write_video(tmp_path / "cut.mp4", frames)
    info = probe(video)
    detector = SceneCutDetector()
    resampler = Resampler(Interpolator(model, resolve_device("cpu"), False), 2, None)
    ref = list(output_frames(video, info, Fraction(24), resampler, detector))
    stage = InterpolateStage(model, torch.device("cpu"), False, 2, None, detector)
    items = [Item(f.index, f.pts, info.time_base, f.image) for f in iter_frames(video)]
    with torch.inference_mode():
        whole = list(stage(iter(items)))
        pieces = [it for s in range(0, 8, 3) for it in run_chain([stage], items, s, min(s + 3, 8))]
    assert len(whole) == len(ref) == 16
    for (pts, tb, img), it, piece in zip(ref, whole, pieces):
        assert (pts, tb) == (it.pts, it.tb) == (piece.pts, piece.tb)
        assert np.array_equal(img, it.image) and np.array_equal(it.image, piece.image)
    assert np.array_equal(whole[7].image, items[3].image)  # interval 3 -> 4 spans the cut: frame 3 held
    assert np.array_equal(whole[-1].image, items[7].image)  # the last frame is held for its interval
