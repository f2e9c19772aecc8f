"""Video deeper than 8 bits stays deep through the one video path (issue 14): a 10-bit input is decoded to 16-bit
RGB, kept at 16 bits in the resumable segments, and written at 10 bits (yuv420p10le H.264, gbrp10le FFV1, 16-bit
PNG frames); 8-bit input stays 8-bit. An identity model (RestoreUNet's last conv starts at zero) isolates the
conversions. Errors are measured on the stored sample levels themselves (read as planes, no colour conversion),
against what an 8-bit path (video.depth=8) makes of the same clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from restoregan.data.video import probe
from video_clips import gradient_frames, identity_export, make_clip, read_planes, run_identity

BT709_TAGS = (1, 1, 1, 1)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return identity_export(tmp_path_factory.mktemp("identity"))


def level_errors(got: list[np.ndarray], want: list[np.ndarray], scale: int = 1) -> tuple[list[int], list[float]]:
    """Per channel (Y, Cb, Cr): max and mean absolute difference in 10-bit levels (`scale` lifts 8-bit to 10)."""
    diff = np.abs(np.stack(got) * scale - np.stack(want))  # (n, 3, h, w)
    return diff.max(axis=(0, 2, 3)).tolist(), diff.mean(axis=(0, 2, 3)).round(3).tolist()


def test_ten_bit_input_is_processed_and_written_at_ten_bits(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mp4", gradient_frames(4), bits=10, colour=BT709_TAGS)
    assert probe(clip).bits == 10
    fmt_in, planes_in = read_planes(clip)
    assert fmt_in == "yuv420p10le"

    deep = run_identity(identity, clip, tmp_path / "deep", "video.keep_segments=true")
    fmt, planes = read_planes(deep)
    assert fmt == "yuv420p10le" and len(planes) == len(planes_in)
    segment = next((tmp_path / "deep" / "reel_restored.mp4.work").glob("seg_*.mkv"))
    assert read_planes(segment)[0] == "gbrp16le"  # the resumable segments keep 16 bits

    shallow = run_identity(identity, clip, tmp_path / "shallow", "video.depth=8")
    fmt8, planes8 = read_planes(shallow)
    assert fmt8 == "yuv420p"

    deep_max, deep_mean = level_errors(planes, planes_in)
    trunc_max, trunc_mean = level_errors(planes8, planes_in, scale=4)
    print(f"10-bit path: max {deep_max} mean {deep_mean}; 8-bit path: max {trunc_max} mean {trunc_mean} "
          "(10-bit levels, Y Cb Cr)")
    # luma and Cb within 2 levels; Cr carries swscale's horizontal chroma-siting shift (half a chroma sample per
    # YUV -> RGB -> YUV round trip, about 3 levels on this red ramp) in both paths alike
    assert max(deep_max[:2]) <= 2 and deep_max[2] <= 6, deep_max
    assert all(d < t for d, t in zip(deep_mean, trunc_mean)), (deep_mean, trunc_mean)
    assert all(d <= t for d, t in zip(deep_max, trunc_max)) and deep_max[0] < trunc_max[0], (deep_max, trunc_max)


def test_ten_bit_ffv1_and_png_outputs_stay_deep(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mkv", gradient_frames(2), bits=10)
    mkv = run_identity(identity, clip, tmp_path / "ffv1", "video.format=ffv1")
    fmt, planes = read_planes(mkv)
    assert fmt == "gbrp10le"
    assert max(p.max() for p in planes) > 255  # levels beyond 8 bits' range: really 10-bit samples
    folder = run_identity(identity, clip, tmp_path / "png", "video.format=png")
    png = cv2.imread(str(sorted(folder.glob("*.png"))[0]), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    assert len(np.unique(png[..., 1])) > len(np.unique(np.round(png[..., 1] / 257)))  # finer than 8-bit steps


def test_eight_bit_input_stays_eight_bit(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mp4", gradient_frames(2), bits=8)
    assert probe(clip).bits == 8
    fmt, planes = read_planes(run_identity(identity, clip, tmp_path / "out"))
    assert fmt == "yuv420p"
    _, planes_in = read_planes(clip)
    err_max, _ = level_errors(planes, planes_in)
    assert max(err_max) <= 1, err_max


def test_deep_segments_resume(identity: Path, tmp_path: Path) -> None:
    """A rerun reuses the 16-bit segments (same depth, same hash) and writes the same 10-bit frames."""
    clip = make_clip(tmp_path / "reel.mp4", gradient_frames(4), bits=10)
    out = tmp_path / "out"
    first = read_planes(run_identity(identity, clip, out, "video.keep_segments=true", "video.segment_frames=2"))
    segments = sorted((out / "reel_restored.mp4.work").glob("seg_*.mkv"))
    stamps = [p.stat().st_mtime_ns for p in segments]
    assert len(segments) == 2
    second = read_planes(run_identity(identity, clip, out, "video.keep_segments=true", "video.segment_frames=2"))
    assert [p.stat().st_mtime_ns for p in segments] == stamps  # not recomputed
    assert second[0] == "yuv420p10le" and all(np.array_equal(a, b) for a, b in zip(first[1], second[1]))
