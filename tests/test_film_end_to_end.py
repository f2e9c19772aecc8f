"""Issue 14's end-to-end case: a 10-bit, BT.709-tagged, interlaced clip with sound goes through `pipeline=film` with
stages of three formats (a spandrel DnCNN .pth restoring, one of our models exported to ONNX upscaling, our own
export interpolating) and comes out 10-bit, tagged BT.709, progressive, with its sound in sync.

Every property is read back from the output with PyAV, not through restoregan's reader."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from cli_utils import compose_conf, infer_in_process
from community_files import save_as_user
from pipeline_utils import make_export, streams
from restoregan.data.video import combing
from restoregan.models import load_model
from video_clips import make_clip, woven_frames

BT709 = (1, 1, 1, 1)  # matrix, range (limited), primaries, transfer: FFmpeg's numbers
FPS, N = 12, 6


@pytest.mark.slow
def test_deep_interlaced_tagged_clip_with_sound_through_three_formats(tmp_path: Path) -> None:
    from restoregan.exporting import export

    clip = make_clip(tmp_path / "reel.mp4", woven_frames(N), fps=FPS, bits=10, colour=BT709, interlaced=True,
                     audio="aac")
    with av.open(str(clip)) as container:
        video = container.streams.video[0].codec_context
        assert video.pix_fmt == "yuv420p10le" and video.field_order not in (0, 1)  # deep and interlaced

    (tmp_path / "dncnn").mkdir()
    restore = save_as_user("dncnn", tmp_path / "dncnn")  # spandrel's DnCNN as its users hold it
    sr = make_export(tmp_path / "runs", "tiny_sr", "sr")  # ours, x2, converted to ONNX by export.py
    onnx = tmp_path / "upscale.onnx"
    export(compose_conf("export", [f"ckpt={sr}", "format=onnx", f"output={onnx}"]))
    interp = make_export(tmp_path / "runs", "tiny_interp", "interp")  # ours
    models = {name: load_model(path) for name, path in (("restore", restore), ("upscale", onnx),
                                                        ("interpolate", interp))}
    assert models["restore"].source.startswith("spandrel DnCNN") and models["restore"].task.name == "restore"
    assert onnx.suffix == ".onnx" and models["upscale"].task.name == "sr" and models["upscale"].scale == 2
    assert models["interpolate"].task.name == "interp" and models["interpolate"].arch is not None

    out = tmp_path / "restored.mp4"
    with torch.no_grad():
        infer_in_process(["pipeline=film", f"input={clip}", f"output={out}", "pipeline.order=[restore,upscale,"
                          "interpolate]", f"stages.restore.ckpt={restore}", f"stages.upscale.ckpt={onnx}",
                          f"stages.interpolate.ckpt={interp}", "video.contact_frames=0"])

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        assert cc.pix_fmt == "yuv420p10le", cc.pix_fmt  # 10-bit in, 10-bit out
        assert (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc) == BT709
        assert cc.field_order in (0, 1), cc.field_order  # unknown or progressive: not flagged interlaced
        frames = [f for f in container.decode(video=0)]
        assert not any(f.interlaced_frame for f in frames)
        assert frames[0].format.components[0].bits == 10
        assert (frames[0].width, frames[0].height) == (2 * 64, 2 * 48)
        rgb = [f.to_ndarray(format="rgb24") / 255.0 for f in frames]
    combed_in = np.mean([combing(f)[0] for f in woven_frames(N)])
    combed_out = np.mean([combing(f)[0] for f in rgb])
    assert combed_out < 0.1 * combed_in, (combed_in, combed_out)  # deinterlaced before the first stage

    before, after = streams(clip), streams(out)
    assert after["frames"] == 2 * N  # interpolated x2
    assert after["audio"] is not None
    assert abs(after["video_duration"] - before["video_duration"]) <= 1 / (2 * FPS)
    assert abs(after["audio"]["end"] - before["audio"]["end"]) <= 1 / FPS
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        starts = [float(c.streams.audio[0].start_time * c.streams.audio[0].time_base) for c in (a, b)]
    assert abs(starts[0] - starts[1]) <= 1 / FPS
