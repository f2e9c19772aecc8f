"""evaluate.py and infer.py for interpolation models: metrics.json schema, scene cuts skipped, video out with
the right frame count, timestamps and duration, no blending across cuts, one-line errors; the task's stream stage
on its own (what the film pipeline runs for infer.py on a video or frame folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, shared_path
from interp_utils import clip_with_cut, read_back, scene, write_folder, write_video
from restoregan.data.io import write_image
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.gans.interp_net import InterpolationNet
from restoregan.models import load_model
from restoregan.tasks.base import Item, RunOptions
from restoregan.tasks.interp import InterpolationTask
from cli_utils import compose_conf, infer_in_process


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random interpolation net exported like train.py does (its quality is not under test here)."""
    torch.manual_seed(0)
    arch = {"_target_": "restoregan.gans.interp_net.InterpolationNet", "num_feat": [8, 8, 8],
            "num_conv": [1, 1, 1], "scales": [4, 2, 1], "refine_feat": 4}
    net = InterpolationNet(**{k: v for k, v in arch.items() if k != "_target_"})
    base = tmp_path_factory.mktemp("model") / "generator"
    return save_export(base, net, arch, {"task": InterpolationTask().config(), "scale": 1})


def test_evaluate_reports_model_and_baselines_skipping_the_cut(model_path: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "cut.mp4", clip_with_cut(6, 6))
    out = tmp_path / "eval"
    report = evaluate(compose_conf("evaluate", [f"ckpt={model_path}", f"input={video}", f"out_dir={out}", "lpips=false"]))
    # 12 frames -> 10 triplets, 2 of which span the cut before frame 6
    assert report["triplets"] == 8 and report["triplets_skipped_scene_cut"] == 2
    assert report["scene_cuts_before"] == ["frame_000006"] and report["step"] == 1
    assert list(report["methods"]) == ["repeat", "blend", "generator"]
    for scores in report["methods"].values():
        assert len(scores["images"]) == 8 and scores["lpips"] is None
        assert set(scores["images"][0]) == {"image", "from", "psnr", "ssim", "lpips"}
        assert scores["images"][0]["image"] == "frame_000001" and scores["images"][0]["from"] == [
            "frame_000000", "frame_000002"]
        assert np.isclose(scores["psnr"], np.mean([im["psnr"] for im in scores["images"]]))
    assert json.loads((out / "metrics.json").read_text()) == report
    assert "| blend |" in (out / "metrics.md").read_text() and (out / "comparison.png").stat().st_size > 0
    # blending a square moving 2 px against the truth: PSNR well above repetition on this clip
    assert report["methods"]["blend"]["psnr"] > report["methods"]["repeat"]["psnr"]


def test_evaluate_step_and_duplicates(model_path: Path, tmp_path: Path) -> None:
    frames = scene(9)
    frames = frames[:3] + [frames[2]] + frames[3:]  # a pulldown-style repeat of frame 2
    folder = write_folder(tmp_path / "frames", frames)
    cfg = compose_conf("evaluate", [f"ckpt={model_path}", f"input={folder}", f"out_dir={tmp_path / 'e'}", "lpips=false",
                            "task=interp", "task.step=2", "task.drop_duplicates=true"])
    report = evaluate(cfg)
    assert report["duplicates_dropped"] == 1 and report["frames"] == 9
    # 4.png (the repeat) is gone: the first step-2 triplet is 1.png, 3.png, 6.png
    first = report["methods"]["generator"]["images"][0]
    assert report["triplets"] == 9 - 4 and first["from"] == ["1.png", "6.png"] and first["image"] == "3.png"


def test_baseline_only_interp_report(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "frames", scene(5))
    report = evaluate(compose_conf("evaluate", ["task=interp", f"input={folder}", f"out_dir={tmp_path / 'e'}", "lpips=false"]))
    assert list(report["methods"]) == ["repeat", "blend"]


def test_x2_video_keeps_timestamps_and_duration(model_path: Path, tmp_path: Path) -> None:
    frames = scene(10)
    video = write_video(tmp_path / "in.mp4", frames, fps=12)
    out = infer_in_process([f"ckpt={model_path}", f"input={video}", f"output={tmp_path / 'out'}", "device=cpu",
                            "video.crf=0", "video.pix_fmt=yuv444p"])[0]
    assert out == tmp_path / "out" / "in_x2.mp4"
    got, times, duration = read_back(out)
    _, in_times, in_duration = read_back(video)
    assert len(got) == 2 * len(frames)
    assert abs(duration - in_duration) <= 1 / 12  # within one input frame (here: equal)
    assert np.allclose(times[::2], in_times, atol=1e-6)  # every input frame keeps its time
    assert np.allclose(np.diff(times), 1 / 24, atol=1e-6)
    for i in (0, 4, 9):  # input frames pass through unchanged (lossless up to RGB <-> YUV)
        assert np.abs(got[2 * i] - frames[i]).mean() < 0.01


def test_no_blending_across_a_scene_cut(model_path: Path, tmp_path: Path) -> None:
    frames = clip_with_cut(4, 4)
    video = write_video(tmp_path / "cut.mp4", frames)
    out = infer_in_process([f"ckpt={model_path}", f"input={video}", f"output={tmp_path}/o", "device=cpu",
                            "task=interp", "task.factor=4", "video.crf=0", "video.pix_fmt=yuv444p"])[0]
    assert out == tmp_path / "o" / "cut_x4.mp4"
    got, _, _ = read_back(out)
    assert len(got) == 4 * 8
    for j in range(12, 16):  # the interval from frame 3 to frame 4 (the cut): frame 3 held
        assert np.abs(got[j] - frames[3]).mean() < 0.01
    assert np.abs(got[16] - frames[4]).mean() < 0.01


def test_frame_folder_and_target_fps(model_path: Path, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "frames", scene(6))
    frames_dir = infer_in_process([f"ckpt={model_path}", f"input={folder}", f"output={tmp_path / 'o'}",
                                   "device=cpu", "task=interp", "task.fps=60", "video.input_fps=24"])[0]
    assert frames_dir == tmp_path / "o" / "frames_60fps"
    # 6 frames at 24 fps last 0.25 s: 15 frames at 60 fps
    assert len(list(frames_dir.glob("*.png"))) == 15
    info = json.loads((frames_dir / "frames.json").read_text())
    times = [f["time"] for f in info["frames"]]
    assert Fraction(info["fps"]) == 60 and np.allclose(times, np.arange(15) / 60, atol=1e-6)


def test_infer_errors_are_one_line(model_path: Path, tmp_path: Path) -> None:
    one = write_video(tmp_path / "one.mp4", scene(1))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    for path, expected in ((one, "only 1 frame"), (bad, "not a readable video")):
        proc = subprocess.run(
            [sys.executable, "infer.py", f"ckpt={model_path}", f"input={path}", f"output={tmp_path / 'o'}", "device=cpu"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {path}") and expected in last, proc.stderr[-500:]
    with pytest.raises(ValueError, match="task.factor=1"):
        infer_in_process([f"ckpt={model_path}", f"input={one}", f"output={tmp_path / 'o'}", "task=interp",
                          "task.factor=1"])
    image = tmp_path / "still.png"
    write_image(image, scene(1)[0])
    with pytest.raises(ValueError, match="frame interpolation needs a video or a folder of frames"):
        infer_in_process([f"ckpt={model_path}", f"input={image}", f"output={tmp_path / 's'}"])
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())  # nothing written


def _stream(frames: list[np.ndarray], tb: Fraction, step: int = 1) -> list[Item]:
    return [Item(i, i * step, tb, img) for i, img in enumerate(frames)]


def test_stage_keeps_timestamps_holds_the_last_frame_and_never_blends_across_a_cut(model_path: Path) -> None:
    """The stage alone, on the frames the pipeline would hand it: x4 over a clip with a cut after frame 3."""
    model = load_model(model_path, options={"factor": 4})
    stage = model.task.stage("interpolate", model, RunOptions(batch=2))
    assert stage.context == (1, 1) and stage.scale == 1 and stage.rate(Fraction(24)) == 96
    frames = clip_with_cut(4, 4)
    out = list(stage(iter(_stream(frames, Fraction(1, 24), step=3))))  # pts 0, 3, 6, ... in 1/24 s
    assert len(out) == 4 * 8 and all(it.tb == Fraction(1, 96) for it in out)
    assert [it.pts for it in out] == list(range(0, 4 * 8 * 3, 3))  # evenly spaced, input frames keep their time
    assert [it.index for it in out] == [i for i in range(8) for _ in range(4)]
    for i in range(8):  # input frames pass through unchanged
        assert np.array_equal(out[4 * i].image, frames[i])
    for j in range(12, 16):  # across the cut (frame 3 -> 4): frame 3 held, nothing blended
        assert np.array_equal(out[j].image, frames[3])
    for j in range(28, 32):  # the last frame held for one interval
        assert np.array_equal(out[j].image, frames[7])
    assert not np.array_equal(out[1].image, frames[0])  # inside a shot the model makes new frames


def test_stage_resamples_to_a_target_rate(model_path: Path) -> None:
    model = load_model(model_path, options={"fps": 60})
    stage = model.task.stage("interpolate", model, RunOptions())
    out = list(stage(iter(_stream(scene(6), Fraction(1, 24)))))
    # 6 frames at 24 fps last 0.25 s: 15 frames at 60 fps, times m / 60
    assert [it.pts for it in out] == list(range(15)) and all(it.tb == Fraction(1, 60) for it in out)
    assert stage.rate(Fraction(24)) == 60
    with pytest.raises(ValueError, match="at least 2 frames"):
        list(stage(iter(_stream(scene(1), Fraction(1, 24)))))


@pytest.mark.data
@pytest.mark.slow
def test_x2_on_the_shared_newsreel_clip(model_path: Path, tmp_path: Path) -> None:
    """The issue's check, through the command line. One OpenMP thread: on a shared 2-core machine two threads
    fighting other processes are many times slower than one."""
    video = shared_path("footage", "a_bomb_blast_effects_part.mp4")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "infer.py", f"ckpt={model_path}", f"input={video}", f"output={tmp_path}", "device=cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=400, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, times, duration = read_back(tmp_path / "a_bomb_blast_effects_part_x2.mp4")
    _, in_times, in_duration = read_back(video)
    assert len(got) in (2 * len(in_times) - 1, 2 * len(in_times))  # 360 frames -> 720
    assert abs(duration - in_duration) <= 1 / 29
    assert np.allclose(times[::2], in_times, atol=1e-6)
