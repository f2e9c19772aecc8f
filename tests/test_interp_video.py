"""Reading frames from video files (PyAV) and frame folders; scene cuts, duplicates; one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interp_utils import clip_with_cut, scene, write_folder, write_video
from restoregan.data.video import (
    SceneCutDetector,
    VideoReadError,
    duplicate_frames,
    probe,
    read_frames,
    windows_without_cuts,
)


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


def test_video_frames_round_trip(tmp_path: Path) -> None:
    frames = scene(7)
    path = write_video(tmp_path / "clip.mp4", frames, fps=25)
    read = read_frames(path)
    assert len(read) == 7
    assert [f.index for f in read] == list(range(7))
    for got, want in zip(read, frames):
        assert got.image.shape == want.shape and got.image.dtype == np.float32
        assert np.abs(got.image - want).mean() < 0.01  # lossless h264 up to RGB <-> YUV rounding
    pts = [f.pts for f in read]
    assert pts == sorted(pts) and len(set(pts)) == 7
    info = probe(path)
    assert info.fps == 25 and info.frames == 7 and info.size == (48, 64) and not info.is_folder


def test_frame_folder_is_read_in_numeric_order(tmp_path: Path) -> None:
    frames = scene(11)
    folder = write_folder(tmp_path / "frames", frames)  # 1.png ... 11.png: text order would put 10 after 1
    read = read_frames(folder)
    assert [f.name for f in read] == [f"{i}.png" for i in range(1, 12)]
    for got, want in zip(read, frames):
        assert np.abs(got.image - want).max() <= 0.5 / 255 + 1e-6
    assert probe(folder).frames == 11 and probe(folder).is_folder


def test_one_frame_video_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_video(tmp_path / "one.mp4", scene(1))
    with pytest.raises(VideoReadError) as err:
        read_frames(path)
    assert "only 1 frame" in _one_line(err, path)


def test_corrupt_and_non_video_files_are_refused_in_one_line(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", scene(8)).read_bytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(good[: len(good) // 3])  # truncated: header without the rest
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    for path in (corrupt, text):
        with pytest.raises(VideoReadError) as err:
            read_frames(path)
        _one_line(err, path)
    with pytest.raises(VideoReadError, match="no such file"):
        read_frames(tmp_path / "missing.mp4")


def test_frames_of_different_sizes_are_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "mixed", scene(3))
    write_folder(folder, scene(1, h=40), start=4)
    with pytest.raises(VideoReadError) as err:
        read_frames(folder)
    assert "4.png" in _one_line(err, folder / "4.png")


def test_scene_cut_detected_on_a_synthetic_cut(tmp_path: Path) -> None:
    frames = clip_with_cut(6, 6)
    detector = SceneCutDetector()
    assert detector.cuts(frames) == [6]
    # the same through a real encode / decode
    read = [f.image for f in read_frames(write_video(tmp_path / "cut.mp4", frames, lossless=False))]
    assert detector.cuts(read) == [6]
    # motion alone (a square moving 6 px a frame) and flicker (brightness +-10%) are not cuts
    moving = scene(8, speed=6)
    assert detector.cuts(moving) == []
    assert detector.cuts([f * (1.1 if i % 2 else 0.9) for i, f in enumerate(moving)]) == []


def test_windows_skip_scene_cuts_and_duplicates_are_found() -> None:
    # 12 frames, cut before frame 6: triplets 0..3 and 6..9 are valid; 4 (4,5,6) and 5 (5,6,7) span it
    assert windows_without_cuts(12, 2, [6]) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert windows_without_cuts(12, 4, [6]) == [0, 1, 6, 7]
    frames = scene(5)
    with_dups = [frames[0], frames[1], frames[1], frames[2], frames[3], frames[3] + 0.001, frames[4]]
    assert duplicate_frames(with_dups) == [2, 5]
