"""Film pipeline video I/O, read back with PyAV: 2x frame rate with the same duration, audio carried over (copied
or re-encoded to AAC), lossless FFV1 and PNG outputs equal to the model's frames, side-by-side and contact sheet."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from interp_utils import read_back
from pipeline_utils import moving_clip, run_infer, streams, write_clip
from restoregan.data.io import read_image
from restoregan.data.video import VideoWriter, container_for
from restoregan.models import load_model


def _args(runs: Path, clip: Path, out: Path, *extra: str) -> list[str]:
    return [f"input={clip}", f"output={out}", f"pipeline.runs_dir={runs}", "video.segment_frames=4", *extra]


def test_four_stages_2x_rate_2x_size_same_duration_audio_kept(runs: Path, tmp_path: Path) -> None:
    fps, n = 12, 10
    clip = write_clip(tmp_path / "reel.mp4", moving_clip(n), fps=fps, audio="aac")
    before = streams(clip)
    (out,) = run_infer(_args(runs, clip, tmp_path / "restored.mp4"))
    assert out == tmp_path / "restored.mp4" and not (tmp_path / "restored.mp4.work").exists()
    got = streams(out)
    assert got["frames"] == 2 * n and got["fps"] == 2 * fps and got["size"] == (96, 128)
    assert np.allclose(got["times"][::2], before["times"], atol=1e-6)  # input frames keep their times
    assert np.allclose(np.diff(got["times"]), 1 / (2 * fps), atol=1e-6)
    assert abs(got["video_duration"] - before["video_duration"]) <= 1 / fps
    # the AAC track is copied: present, same codec and rate, ending within a frame of the video
    assert got["audio"] == before["audio"] and got["audio"]["codec"] == "aac"
    assert abs(got["audio"]["end"] - got["video_duration"]) <= 1 / fps
    contact = Image.open(tmp_path / "restored_contact.png")
    # 6 rows of input | output (96 px high cells), then input | output detail at full resolution: 96 px squares,
    # the largest up to 128 px that fit a 96-high frame
    assert contact.size[0] == 2 * 128 + 2 * 96 and contact.size[1] > 6 * 96


def test_audio_the_container_cannot_hold_is_reencoded_to_aac(runs: Path, tmp_path: Path) -> None:
    fps, n = 12, 6
    clip = write_clip(tmp_path / "reel.mkv", moving_clip(n), fps=fps, audio="pcm_u8")
    assert "pcm_u8" not in av.open(str(tmp_path / "probe.mp4"), "w").supported_codecs
    (out,) = run_infer(_args(runs, clip, tmp_path / "out.mp4", "pipeline.order=[upscale]"))
    got = streams(out)
    assert got["audio"]["codec"] == "aac" and got["audio"]["rate"] == 22050
    assert abs(got["audio"]["end"] - n / fps) <= 1 / fps and got["frames"] == n


def test_ffv1_output_is_lossless_and_equals_the_model(runs: Path, tmp_path: Path) -> None:
    frames = moving_clip(5)
    clip = write_clip(tmp_path / "reel.mp4", frames)
    sr = runs / "tiny_sr" / "export" / "generator.yaml"
    (out,) = run_infer(_args(runs, clip, tmp_path / "out.mkv", "pipeline.order=[upscale]", "video.audio=false",
                             "video.contact_frames=0", "exact=true"))  # fp32, as the reference below
    assert not (tmp_path / "out_contact.png").exists()
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    got, times, _ = read_back(out)
    decoded, _, _ = read_back(clip)  # the model sees the decoded input
    net = load_model(sr).net
    with torch.no_grad():
        ref = net(torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    ref8 = np.round(ref * 255)
    diff = np.abs(np.stack(got) * 255 - ref8)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # exact up to float rounding at a .5 level
    assert np.allclose(times, np.arange(5) / 12, atol=1e-3)  # Matroska keeps milliseconds


def test_png_frames_with_times_and_audio_and_side_by_side(runs: Path, tmp_path: Path) -> None:
    fps, n = 12, 6
    frames = moving_clip(n)
    clip = write_clip(tmp_path / "reel.mp4", frames, fps=fps, audio="aac")
    out = tmp_path / "frames_out"
    (folder,) = run_infer(_args(runs, clip, out, "pipeline.order=[upscale,interpolate]", "video.side_by_side=true"))
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 2 * n and read_image(pngs[0]).shape == (96, 128, 3)
    info = json.loads((folder / "frames.json").read_text())
    assert Fraction(info["fps"]) == 2 * fps
    assert np.allclose([f["time"] for f in info["frames"]], np.arange(2 * n) / (2 * fps), atol=1e-6)
    assert [f["input_frame"] for f in info["frames"]] == [i // 2 for i in range(2 * n)]
    with av.open(str(folder / "audio.mka")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    sbs, sbs_times, _ = read_back(tmp_path / "frames_out_side_by_side.mp4")
    assert len(sbs) == 2 * n and sbs[0].shape == (96, 256, 3)
    assert np.allclose(sbs_times, np.arange(2 * n) / (2 * fps), atol=1e-6)
    # right half: the output frame; left half: the input scaled up to the output size (both through yuv420p)
    assert np.abs(sbs[4][:, 128:] - read_image(pngs[4])).mean() < 0.03
    left = np.asarray(Image.fromarray(np.round(frames[2] * 255).astype(np.uint8)).resize((128, 96), Image.BICUBIC))
    assert np.abs(sbs[4][:, :128] - left / 255).mean() < 0.03


def test_video_writer_numbers_frames_without_pts(tmp_path: Path) -> None:
    path = tmp_path / "plain.mp4"
    writer = VideoWriter(path, Fraction(10), "libx264", 0, "yuv444p", container_for(path))
    for img in moving_clip(4):
        writer.write(img)
    writer.close()
    _, times, duration = read_back(path)
    assert np.allclose(times, [0, 0.1, 0.2, 0.3]) and abs(duration - 0.4) < 1e-6


@pytest.mark.parametrize("output, fmt, message", [
    ("out.avi", "auto", "cannot write a video with suffix '.avi'"),
    ("out.mp4", "ffv1", r"FFV1 \(lossless\) needs a Matroska file"),
    ("out.mp4", "png", "PNG frames go to a folder"),
])
def test_output_format_errors(runs: Path, tmp_path: Path, output: str, fmt: str, message: str) -> None:
    clip = write_clip(tmp_path / "reel.mp4", moving_clip(3))
    with pytest.raises(ValueError, match=message):
        run_infer(_args(runs, clip, tmp_path / output, f"video.format={fmt}", "pipeline.order=[upscale]"))


@pytest.mark.data
def test_real_newsreel_first_frames_2x_rate_same_duration(runs: Path, tmp_path: Path) -> None:
    clip = shared_path("footage", "a_bomb_blast_effects_part.mp4")
    n = 6
    (out,) = run_infer([f"input={clip}", f"output={tmp_path / 'news.mp4'}", f"pipeline.runs_dir={runs}",
                        "pipeline.order=[colorize,interpolate]", f"video.max_frames={n}",
                        "video.segment_frames=4"])
    before, got = streams(clip), streams(out)
    assert got["frames"] == 2 * n and got["fps"] == 2 * before["fps"] and got["size"] == (320, 432)
    assert np.allclose(got["times"][::2], before["times"][:n], atol=1e-6)
    assert abs(got["video_duration"] - n / float(before["fps"])) <= 1 / float(before["fps"])
    assert got["audio"] is None  # the clip has no sound; nothing is invented
