"""Video colour through the one video path: the input's matrix, range, primaries and transfer are read (untagged
input guessed as players guess: BT.601 below 720 lines, BT.709 at and above), used for YUV -> RGB and back, and
written as tags. Clips are made here from the BT.601/BT.709 equations in numpy (not through the code under test)
and stored losslessly (H.264 qp 0, 4:4:4), so every level of difference comes from the conversions."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from av.video.reformatter import Interpolation

from pipeline_utils import compose_infer, infer_module, task_named
from restoregan.data.video import BT709, LIMITED, SMPTE170M, ColourInfo, VideoWriter, iter_frames, probe
from restoregan.gans.checkpoint import save_export
from restoregan.gans.restore_unet import RestoreUNet

KR_KB = {BT709: (0.2126, 0.0722), SMPTE170M: (0.299, 0.114)}  # luma weights of red and blue per matrix
ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
BARS = [(200, 40, 40), (191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0),
        (0, 0, 191), (16, 16, 16), (235, 235, 235)]


def bars(h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 vertical colour bars, (200, 40, 40) first."""
    img = np.zeros((h, w, 3), np.uint8)
    edges = np.linspace(0, w, len(BARS) + 1).round().astype(int)
    for colour, a, b in zip(BARS, edges[:-1], edges[1:]):
        img[:, a:b] = colour
    return img


def interiors(err: np.ndarray) -> np.ndarray:
    """The bars' insides (4 px from each edge, where 4:2:0 chroma blends neighbours): (h, n, 3)."""
    edges = np.linspace(0, err.shape[1], len(BARS) + 1).round().astype(int)
    return np.concatenate([err[:, a + 4:b - 4] for a, b in zip(edges[:-1], edges[1:])], axis=1)


def to_yuv(rgb: np.ndarray, matrix: int) -> np.ndarray:
    """(3, h, w) uint8 limited-range Y'CbCr of `rgb` by the textbook equations of `matrix`."""
    kr, kb = KR_KB[matrix]
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    return np.clip(np.round(np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr])), 0, 255).astype(np.uint8)


def write_yuv_clip(path: Path, rgb: np.ndarray, matrix: int, tagged: bool, frames: int = 2) -> Path:
    """A lossless 4:4:4 H.264 clip of `rgb` converted with `matrix`, tagged (matrix, primaries, transfer, limited
    range) or not at all."""
    planes = to_yuv(rgb, matrix)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv444p"
        stream.options = {"qp": "0"}
        if tagged:
            cc = stream.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = matrix, LIMITED, matrix, matrix
        for n in range(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
            if tagged:
                frame.colorspace, frame.color_range = matrix, LIMITED
            frame.pts = n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_ours(path: Path) -> np.ndarray:
    return np.stack([np.round(f.image * 255) for f in iter_frames(path)]).astype(int)


def read_by_tags(path: Path) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """((matrix, range, primaries, transfer) of the stream, frames) as a player reads them: PyAV's own conversion,
    which follows the frames' tags (accurately rounded: swscale's fast 4:2:0 path alone is off by up to 3 levels)."""
    with av.open(str(path)) as container:
        cc = container.streams.video[0].codec_context
        tags = (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc)
        frames = np.stack([f.to_ndarray(format="rgb24", interpolation=ACCURATE) for f in container.decode(video=0)])
    return tags, frames.astype(int)


def max_error(got: np.ndarray, want: np.ndarray) -> list[int]:
    return np.abs(got - want.astype(int)).reshape(-1, 3).max(axis=0).tolist()


def test_tagged_bt709_720p_bars_read_within_one_level(tmp_path: Path) -> None:
    rgb = bars(720, 1280)
    clip = write_yuv_clip(tmp_path / "bars709.mp4", rgb, BT709, tagged=True)
    assert probe(clip).colour == ColourInfo(BT709, LIMITED, BT709, BT709, tagged=True)
    err = max_error(read_ours(clip), rgb)
    assert max(err) <= 1, f"per-channel max error {err}"
    # the same samples read as BT.601 are far off: (200, 40, 40) -> about (213, 55, 37), as the issue says
    with av.open(str(clip)) as container:
        wrong = next(container.decode(video=0)).to_ndarray(format="rgb24", src_colorspace="itu601")
    assert np.abs(wrong[0, 0].astype(int) - (200, 40, 40)).max() >= 10


@pytest.mark.parametrize(("h", "w", "matrix"), [(480, 640, SMPTE170M), (720, 1280, BT709)])
def test_untagged_input_is_read_as_players_read_it(tmp_path: Path, h: int, w: int, matrix: int) -> None:
    rgb = bars(h, w)
    clip = write_yuv_clip(tmp_path / "untagged.mp4", rgb, matrix, tagged=False, frames=1)
    colour = probe(clip).colour
    assert colour.matrix == matrix and colour.range == LIMITED and not colour.tagged
    err = max_error(read_ours(clip), rgb)
    assert max(err) <= 1, f"{w}x{h} untagged: per-channel max error {err}"


def test_writer_converts_with_and_tags_the_colour_it_is_given(tmp_path: Path) -> None:
    """A BT.601 film upscaled to 720p stays BT.601 (tagged), where an untagged 720p file would be read as BT.709."""
    rgb = bars(720, 1280)
    out = tmp_path / "sd_upscaled.mp4"
    writer = VideoWriter(out, Fraction(24), "libx264", 0, "yuv420p", "mp4",
                         colour=ColourInfo(SMPTE170M, LIMITED, SMPTE170M, SMPTE170M))
    try:
        writer.write(rgb)
    finally:
        writer.close()
    tags, frames = read_by_tags(out)
    assert tags == (SMPTE170M, LIMITED, SMPTE170M, SMPTE170M)
    err = max_error(interiors(frames[0]), interiors(rgb))
    assert max(err) <= 1, f"per-channel max error inside the bars (4:2:0, crf 0): {err}"


def test_pipeline_output_keeps_the_input_bt709(tmp_path: Path) -> None:
    """infer.py with a 1x identity model (RestoreUNet's last conv starts at zero): the output mp4 is tagged as the
    input was and decodes, by its tags, to the input's colours."""
    torch.manual_seed(0)
    arch = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 4, "num_levels": 1, "num_conv": 1}
    net = RestoreUNet(num_feat=4, num_levels=1, num_conv=1)
    task = task_named("restore", grey=False)
    ckpt = tmp_path / "export" / "generator"
    save_export(ckpt, net, arch, {"task": task.config(), "scale": 1})
    rgb = bars(720, 1280)
    clip = write_yuv_clip(tmp_path / "reel.mp4", rgb, BT709, tagged=True)
    cfg = compose_infer(["device=cpu", f"ckpt={ckpt}.yaml", f"input={clip}", f"output={tmp_path / 'out'}",
                         "video.crf=0", "video.pix_fmt=yuv444p", "video.contact_frames=0"])
    with torch.no_grad():
        (out,) = infer_module().infer(cfg)
    assert out == tmp_path / "out" / "reel_restored.mp4"
    tags, frames = read_by_tags(out)
    assert tags == (BT709, LIMITED, BT709, BT709)
    assert len(frames) == 2
    err = max_error(frames, rgb[None])
    print(f"BT.709 720p bars through infer.py: per-channel (R, G, B) max error {err} levels")
    assert max(err) <= 1, f"per-channel max error after the pipeline: {err}"
