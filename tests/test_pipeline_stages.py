"""Film pipeline stages: order and subsets from config, checkpoint discovery and its errors, segment windows, a stage
of a task the pipeline does not name, and stage outputs against independent references (the net itself)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from interp_utils import clip_with_cut, write_video
from pipeline_utils import compose_infer, make_export, moving_clip, run_infer, streams, write_clip
from restoregan.data.video import iter_frames, probe
from restoregan.models import load_model
from restoregan.pipeline.checkpoints import MissingCheckpointError, export_task, newest_export, resolve_checkpoint
from restoregan.pipeline.run import build_stages, run_options, validate_order
from restoregan.pipeline.segments import run_chain, stage_windows
from restoregan.tasks.base import Item, RunOptions

STAGES = {"restore": {}, "colorize": {}, "upscale": {}, "interpolate": {}}


def _items(frames: list[np.ndarray], tb: Fraction = Fraction(1, 12)) -> list[Item]:
    return [Item(i, i, tb, img) for i, img in enumerate(frames)]


def _stages(runs: Path, overrides: list[str]):
    cfg = compose_infer(["pipeline=film", "device=cpu", f"pipeline.runs_dir={runs}", *overrides])
    order = validate_order(cfg.pipeline.order, cfg.stages)
    ckpts = {n: resolve_checkpoint(n, cfg.stages[n].ckpt, cfg.stages[n].get("task"), runs) for n in order}
    return build_stages(cfg, order, ckpts, run_options(cfg, torch.device("cpu"))), ckpts


def test_default_order_and_a_subset_from_config(runs: Path) -> None:
    stages, _ = _stages(runs, [])
    assert [s.name for s in stages] == ["restore", "colorize", "upscale", "interpolate"]
    stages, ckpts = _stages(runs, ["pipeline.order=[interpolate,upscale]"])
    assert [s.name for s in stages] == ["interpolate", "upscale"]  # either way round is allowed
    assert ckpts["upscale"] == runs / "tiny_sr" / "export" / "generator.yaml"
    assert stages[1].scale == 2 and stages[0].rate(Fraction(12)) == 24


def test_stage_options_reach_the_task(runs: Path) -> None:
    """`stages.interpolate.factor=4` is laid over the interp model's task: 4x the rate."""
    stages, _ = _stages(runs, ["pipeline.order=[interpolate]", "stages.interpolate.factor=4"])
    assert stages[0].rate(Fraction(12)) == 48


@pytest.mark.parametrize("order, message", [
    ([], "pipeline.order is empty"),
    (["upscale", "sharpen"], r"unknown stage 'sharpen'.*\+stages\.sharpen\.ckpt=PATH"),
    (["upscale", "upscale"], "'upscale' appears more than once"),
])
def test_order_is_validated(order: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_order(order, STAGES)


def test_a_task_that_must_come_first_is_checked_when_loaded(runs: Path) -> None:
    """restore's task says it runs first (pipeline_first), whatever the stage is called."""
    with pytest.raises(ValueError, match=r"restore must come first \(its task, restore,"):
        _stages(runs, ["pipeline.order=[colorize,restore]"])
    restore = runs / "tiny_restore" / "export" / "generator.yaml"
    with pytest.raises(ValueError, match="clean must come first"):
        _stages(runs, ["pipeline.order=[upscale,clean]", f"+stages.clean.ckpt={restore}"])


def test_newest_export_of_the_stage_task_is_the_default(tmp_path: Path) -> None:
    old = make_export(tmp_path, "sr_old", "sr")
    new = make_export(tmp_path, "sr_new", "sr")
    make_export(tmp_path, "colour", "colorize")
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    assert newest_export(tmp_path, "sr") == new
    os.utime(old, (3_000_000, 3_000_000))
    assert resolve_checkpoint("upscale", None, "sr", tmp_path) == old
    assert resolve_checkpoint("colorize", None, "colorize", tmp_path).parent.parent.name == "colour"
    # an explicit checkpoint wins over discovery
    assert resolve_checkpoint("upscale", str(new), "sr", tmp_path) == new
    # a format-1 export (task named by a word) is found as well
    desc = yaml.safe_load(new.read_text())
    desc["task"], desc["format_version"] = "sr", 1
    new.write_text(yaml.safe_dump(desc))
    assert export_task(new) == "sr"


def test_scan_imports_nothing_a_planted_export_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A yaml in runs/ naming a module outside the allow-list: skipped by the scan without importing it (the module
    would write a marker), and refused in one line naming the file when given as the stage's checkpoint."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_task.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Task:\n    name = 'sr'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    planted = make_export(tmp_path / "runs", "planted", "sr")
    desc = yaml.safe_load(planted.read_text())
    desc["task"] = {"_target_": "evil_task.Task"}
    planted.write_text(yaml.safe_dump(desc))
    assert newest_export(tmp_path / "runs", "sr") is None and not marker.exists()
    cfg = compose_infer(["pipeline=film", "device=cpu", "pipeline.order=[upscale]", f"stages.upscale.ckpt={planted}"])
    with pytest.raises(ValueError) as err:
        build_stages(cfg, ["upscale"], {"upscale": planted}, RunOptions())
    assert str(err.value).startswith(str(planted)) and "not allowed" in str(err.value) and not marker.exists()


def test_missing_checkpoint_names_stage_and_override(tmp_path: Path) -> None:
    make_export(tmp_path, "colour", "colorize")
    with pytest.raises(MissingCheckpointError) as err:
        resolve_checkpoint("upscale", None, "sr", tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path)) and "'upscale'" in message and "stages.upscale.ckpt=PATH" in message
    assert "\n" not in message
    with pytest.raises(MissingCheckpointError, match="stages.interpolate.ckpt"):
        resolve_checkpoint("interpolate", str(tmp_path / "nope.safetensors"), "interp", tmp_path)
    with pytest.raises(MissingCheckpointError, match=r"^stages\.mine\.ckpt: stage 'mine' names no checkpoint"):
        resolve_checkpoint("mine", None, None, tmp_path)


@pytest.mark.parametrize("stage, model", [("upscale", "colorize"), ("colorize", "sr")])
def test_a_checkpoint_of_the_wrong_task_is_refused(runs: Path, stage: str, model: str) -> None:
    """Before the stage's options (colorize's render_size, ...) meet a task they were not written for."""
    path = runs / f"tiny_{model}" / "export" / "generator.yaml"
    want = {"upscale": "sr", "colorize": "colorize"}[stage]
    with pytest.raises(ValueError, match=f"a '{model}' model, but stage '{stage}' needs a '{want}' one"):
        _stages(runs, [f"pipeline.order=[{stage}]", f"stages.{stage}.ckpt={path}"])


def test_a_stage_of_any_task_via_its_ckpt(runs: Path, tmp_path: Path) -> None:
    """+stages.<name>.ckpt=PATH adds a stage the config does not know; its model's task makes the stage."""
    clip = write_clip(tmp_path / "reel.mp4", moving_clip(4), fps=12)
    sr = runs / "tiny_sr" / "export" / "generator.yaml"
    (out,) = run_infer([f"input={clip}", f"output={tmp_path / 'big.mp4'}", f"+stages.bigger.ckpt={sr}",
                        "pipeline.order=[bigger]", "video.contact_frames=0"])
    got = streams(out)
    assert got["frames"] == 4 and got["size"] == (96, 128)


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
    model = load_model(runs / "tiny_sr" / "export" / "generator.yaml")
    frames = moving_clip(5)
    stage = model.task.stage("upscale", model, RunOptions(tile=24, tile_overlap=8, batch=2))
    out = list(stage(iter(_items(frames))))
    assert [(it.index, it.pts) for it in out] == [(i, i) for i in range(5)]
    with torch.no_grad():
        ref = model.net(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert out[0].image.shape == (96, 128, 3)
    assert np.abs(np.stack([it.image for it in out]) - ref).max() < 1e-4


def test_interpolate_stage_equals_the_net_and_segments_do_not_change_it(runs: Path, tmp_path: Path) -> None:
    """Against the net itself: each input frame at its time, the net's t = 0.5 frame halfway, the frame before a
    cut held instead of blended, the last frame held for its interval; and the segmented chain (context 1 frame
    each side) gives the very same frames as one pass."""
    model = load_model(runs / "tiny_interp" / "export" / "generator.yaml", options={"factor": 2})
    frames = clip_with_cut(4, 4)
    video = write_video(tmp_path / "cut.mp4", frames)
    info = probe(video)
    stage = model.task.stage("interpolate", model, RunOptions())
    items = [Item(f.index, f.pts, info.time_base, f.image) for f in iter_frames(video)]
    with torch.inference_mode():
        whole = list(stage(iter(items)))
        pieces = [it for s in range(0, 8, 3) for it in run_chain([stage], items, s, min(s + 3, 8))]
        pairs = [(items[i].image, items[i + 1].image) for i in range(7) if i != 3]  # 3 -> 4 spans the cut
        f0, f1 = (torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2) for x in zip(*pairs))
        mids = model.net(f0, f1, torch.full((len(pairs),), 0.5)).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    step = items[1].pts - items[0].pts
    ref = []
    for i, it in enumerate(items):
        between = it.image if i in (3, 7) else mids[i if i < 3 else i - 1]
        ref += [(2 * it.pts, it.tb / 2, it.image), (2 * it.pts + step, it.tb / 2, between)]
    assert len(whole) == len(pieces) == 16
    for (pts, tb, img), it, piece in zip(ref, whole, pieces):
        assert (pts, tb) == (it.pts, it.tb) == (piece.pts, piece.tb) and it.index == piece.index
        assert np.abs(img - it.image).max() < 1e-5 and np.array_equal(it.image, piece.image)
    assert np.array_equal(whole[7].image, items[3].image)  # interval 3 -> 4 spans the cut: frame 3 held
    assert np.array_equal(whole[-1].image, items[7].image)  # the last frame is held for its interval


def test_task_options_of_one_model_are_refused_with_the_pipeline(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^task=\.\.\.: .*stages\.<stage>\.<option>"):
        run_infer([f"input={tmp_path}", f"output={tmp_path / 'o.mp4'}", "task=interp", "task.factor=4"])
    assert not (tmp_path / "o.mp4.work").exists()
