"""evaluate.py input=ORIGINAL result=PROCESSED (the temporal report): flow-warped frame differences of a result relative to its input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from interp_utils import clip_with_cut, write_folder, write_video
from restoregan.evaluation.temporal import evaluate_temporal
from restoregan.metrics.temporal import PairWarp

ROOT = Path(__file__).resolve().parents[1]


def panning(n: int = 6, h: int = 48, w: int = 64, speed: int = 2, seed: int = 0) -> list[np.ndarray]:
    """A smooth texture panning `speed` px per frame (crops of one larger image: no wrap-around)."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((h, w + speed * n)).astype(np.float32), (0, 0), 2.5)
    big = np.clip(0.5 + (big - big.mean()) * 5, 0.05, 0.95)
    return [np.repeat(big[:, speed * i : speed * i + w, None], 3, axis=2).copy() for i in range(n)]


def cfg(tmp: Path, source: Path, result: Path, **temporal) -> object:
    return OmegaConf.create({
        "input": str(source), "result": str(result), "out_dir": str(tmp / "eval"), "dataset": None,
        "temporal": {"max_frames": None, "scene_cut": {"hist_threshold": 0.35, "diff_threshold": 0.12}, **temporal},
    })


def test_known_motion_is_followed_and_most_pixels_are_valid() -> None:
    a, b = panning(2)
    warp = PairWarp.between(a, b)
    assert warp.valid.mean() > 0.75  # a pure pan occludes only the strip entering at one side
    assert warp.error(a, b) < 2.0  # levels: Farneback recovers a 2 px pan
    # and the warp is what makes it small: unaligned frames differ far more
    assert np.abs(b - a).mean() * 255 > 3 * warp.error(a, b)


def test_brightness_flicker_shows_as_its_size(tmp_path: Path) -> None:
    """Alternating +-d added to every frame: the result's error lies within the input's error of 2 d."""
    frames = panning(6)
    d = 0.03
    flicker = [np.clip(f + (d if i % 2 else -d), 0, 1) for i, f in enumerate(frames)]
    src, res = write_folder(tmp_path / "in", frames), write_folder(tmp_path / "out", flicker)
    report = evaluate_temporal(cfg(tmp_path, src, res))
    e_in, e_out = report["methods"]["input"]["warp_error"], report["methods"]["result"]["warp_error"]
    # |x + 2d| over valid pixels lies in [2d - mean|x|, 2d + mean|x|] (x: the input's residual; 8-bit rounding adds <= 1)
    assert 2 * d * 255 - e_in - 1 <= e_out <= 2 * d * 255 + e_in + 1
    assert report["relative"] > 2 and report["pairs"] == 5
    assert (tmp_path / "eval" / "comparison.png").stat().st_size > 0
    assert "flicker added" in (tmp_path / "eval" / "metrics.md").read_text()


def test_identical_and_upscaled_results_are_as_consistent_as_the_input(tmp_path: Path) -> None:
    frames = panning(5)
    src = write_folder(tmp_path / "in", frames)
    same = evaluate_temporal(cfg(tmp_path, src, write_folder(tmp_path / "same", frames)))
    assert same["relative"] == pytest.approx(1.0, abs=1e-9)
    big = [np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in frames]  # x2 nearest: area-resizes back exactly
    up = evaluate_temporal(cfg(tmp_path, src, write_folder(tmp_path / "big", big)))
    assert up["relative"] == pytest.approx(1.0, abs=1e-3)


def test_a_faster_result_is_paired_by_presentation_time(tmp_path: Path) -> None:
    """A 2x-rate result whose in-between frames are black: only the frames at input times count."""
    frames = panning(5)
    src = write_video(tmp_path / "in.mp4", frames, fps=10)
    doubled = [img for f in frames for img in (f, np.zeros_like(f))]
    res = write_video(tmp_path / "x2.mp4", doubled, fps=20)
    report = evaluate_temporal(cfg(tmp_path, src, res))
    assert report["relative"] == pytest.approx(1.0, abs=1e-6) and report["pairs"] == 4
    # a frame folder with k (N - 1) + 1 frames is paired by index the same way
    folder = write_folder(tmp_path / "x2", doubled[:-1])
    assert evaluate_temporal(cfg(tmp_path, write_folder(tmp_path / "inf", frames), folder))["relative"] == pytest.approx(1.0)


def test_pairs_across_a_scene_cut_are_skipped(tmp_path: Path) -> None:
    frames = clip_with_cut(4, 4)  # a dark scene, then a bright different one
    src = write_folder(tmp_path / "in", frames)
    report = evaluate_temporal(cfg(tmp_path, src, write_folder(tmp_path / "out", frames)))
    assert report["scene_cuts"] == [4] and report["pairs"] == 6


def test_mismatched_result_is_refused_in_one_line(tmp_path: Path) -> None:
    src = write_folder(tmp_path / "in", panning(5))
    res = write_folder(tmp_path / "out", panning(7))
    proc = subprocess.run(
        [sys.executable, "evaluate.py", f"input={src}", f"result={res}", f"out_dir={tmp_path / 'e'}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"error: {res}: 7 frames do not line up with the input's 5 (expected N, k N or k (N - 1) + 1 frames, "
        "or a video with timestamps)"
    ]
    assert not (tmp_path / "e" / "metrics.json").exists()
