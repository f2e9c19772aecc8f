"""Tiny test clips with what real footage carries: 10-bit samples, colour tags, interlaced fields, sound and
subtitles (`make_clip`), and the pictures to fill them (`gradient_frames`, `woven_frames`). Written with PyAV
directly, not through restoregan's writer, losslessly (x264 qp 0 or FFV1), so what a test reads back is what the
code under test made of these samples."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Colorspace, ColorRange, Interpolation

FIELD_TT = 2  # FFmpeg's AV_FIELD_TT: top field first
_SWS = {1: Colorspace.ITU709, 5: Colorspace.ITU601, 6: Colorspace.ITU601, 9: Colorspace.BT2020}
_ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def gradient_frames(n: int = 6, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Smooth diagonal gradients (float64 RGB in [0, 1]) drifting a little each frame: 8-bit rounding shows as
    steps of 4 ten-bit levels, which a 10-bit path must not add."""
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        base = (x + 0.5 * y + 3 * i) / (w + 0.5 * h + 3 * n)
        frames.append(np.stack([0.1 + 0.8 * base, 0.2 + 0.6 * base[:, ::-1], 0.7 - 0.5 * base], axis=-1))
    return frames


def woven_frames(n: int = 6, h: int = 48, w: int = 64, speed: int = 4) -> list[np.ndarray]:
    """Interlaced pictures of a bright bar moving `speed` px per field over a dark gradient: frame i's top field
    (even lines) shows time 2i, its bottom field (odd lines) time 2i + 1, so every moving edge is combed."""
    y, x = np.mgrid[0:h, 0:w]
    background = 0.1 + 0.2 * x / w

    def picture(t: int) -> np.ndarray:
        grey = background.copy()
        grey[(x >= 6 + speed * t) & (x < 18 + speed * t)] = 0.9
        return np.repeat(grey[..., None], 3, axis=-1)

    frames = []
    for i in range(n):
        frame = picture(2 * i)
        frame[1::2] = picture(2 * i + 1)[1::2]
        frames.append(frame)
    return frames


def _encoder(suffix: str, bits: int, codec: str | None) -> tuple[str, str]:
    if codec is None:
        codec = "ffv1" if suffix == ".mkv" and bits > 8 else "libx264"
    deep = "10le" if bits > 8 else ""
    return codec, f"yuv420p{deep}"


def make_clip(
    path: str | Path,
    frames: Sequence[np.ndarray] | None = None,
    *,
    fps: int = 12,
    bits: int = 8,
    colour: tuple[int, int, int, int] | None = None,
    interlaced: bool = False,
    audio: str | None = None,
    subtitles: Sequence[tuple[float, float, str]] = (),
    subtitle_codec: str | None = None,
    codec: str | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Write a lossless clip of `frames` (float RGB in [0, 1]; default `gradient_frames()`, or `woven_frames()`
    when `interlaced`) to `path` (.mp4, .mov or .mkv) and return it.

    `bits`: 8 or 10 (yuv420p / yuv420p10le, H.264 qp 0 (lossless); FFV1 for a 10-bit .mkv); `codec`, `pix_fmt`
    override. `colour`: (matrix, range, primaries, transfer) in FFmpeg's numbers, converted with and tagged (e.g.
    (1, 1, 1, 1) for BT.709 limited); None: untagged, converted as BT.601. `interlaced`: encoded as interlaced,
    top field first (H.264 interlaced coding, field order tt). `audio`: an audio codec ("aac", "pcm_s16le", ...)
    for a 440 Hz sine as long as the video. `subtitles`: (start s, end s, text) cues, as mov_text in mp4/mov and
    SubRip in Matroska unless `subtitle_codec` says ("ass", ...)."""
    path = Path(path)
    if frames is None:
        frames = woven_frames() if interlaced else gradient_frames()
    h, w = frames[0].shape[:2]
    codec, auto_fmt = _encoder(path.suffix.lower(), bits, codec)
    pix_fmt = pix_fmt or auto_fmt
    with av.open(str(path), mode="w") as container:
        video = container.add_stream(codec, rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        cc = video.codec_context
        if codec == "libx264":
            video.options = {"qp": "0", **({"tff": "1"} if interlaced else {})}
        if interlaced:
            cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
            cc.field_order = FIELD_TT
        if colour is not None:
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colour
        sound = None
        if audio is not None:
            sound = container.add_stream(audio, rate=22050)
            sound.layout = "mono"
        text = None
        if subtitles:
            name = subtitle_codec or ("subrip" if path.suffix.lower() == ".mkv" else "mov_text")
            text = container.add_stream(name)
            text.codec_context.subtitle_header = (
                b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
                b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
            text.time_base = Fraction(1, 1000)
        if sound is not None:
            _write_sine(container, sound, len(frames) / fps)
        for i, img in enumerate(frames):
            rgb = np.round(np.clip(img, 0, 1) * (65535 if bits > 8 else 255))
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint16 if bits > 8 else np.uint8),
                                               format="gbrp16le" if bits > 8 else "rgb24")
            matrix = _SWS.get(colour[0], Colorspace.ITU709) if colour else Colorspace.ITU601
            full = colour is not None and colour[1] == 2
            frame = frame.reformat(format=pix_fmt, dst_colorspace=matrix, interpolation=_ACCURATE,
                                   dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG)
            if colour is not None:
                frame.colorspace, frame.color_range = colour[0], colour[1]
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for start, end, words in subtitles:
            data = words.encode()
            if text.codec_context.name == "mov_text":
                data = struct.pack(">H", len(data)) + data
            elif text.codec_context.name == "ass":
                data = b"0,0,Default,,0,0,0,," + data
            packet = av.Packet(data)
            packet.pts = packet.dts = round(start * 1000)
            packet.duration, packet.time_base, packet.stream = round((end - start) * 1000), Fraction(1, 1000), text
            container.mux(packet)
    return path


def _write_sine(container: av.container.OutputContainer, sound: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = sound.codec_context.sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)
    fmt = sound.codec_context.format.name
    if fmt.startswith("s16"):
        data, name = (wave * 32767).astype(np.int16), "s16"
    else:
        data, name = wave.astype(np.float32), "flt"
    frame = av.AudioFrame.from_ndarray(data[None], format=name, layout="mono")
    frame.rate, frame.pts = rate, 0
    for packet in sound.encode(frame):
        container.mux(packet)
    for packet in sound.encode():
        container.mux(packet)


def read_planes(path: Path) -> tuple[str, list[np.ndarray]]:
    """(pix_fmt, frames as (3, H, W) integer sample planes, chroma upsampled by repetition) of the first video
    stream: the stored levels themselves, no colour conversion."""
    with av.open(str(path)) as container:
        name = container.streams.video[0].codec_context.pix_fmt
        out = []
        for frame in container.decode(video=0):
            planes = []
            for plane in frame.planes:
                dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
                row = plane.line_size // np.dtype(dtype).itemsize
                arr = np.frombuffer(bytes(plane), dtype).reshape(plane.height, row)[:, :plane.width]
                ry, rx = frame.height // plane.height, frame.width // plane.width
                planes.append(np.repeat(np.repeat(arr, ry, axis=0), rx, axis=1).astype(np.int64))
            out.append(np.stack(planes[:3]))
    return name, out


def identity_export(folder: Path) -> Path:
    """A 1x restore export whose output equals its input (RestoreUNet's last conv starts at zero): the video path's
    conversions alone are then under test. Returns its yaml."""
    import torch

    from pipeline_utils import task_named
    from restoregan.gans.checkpoint import save_export
    from restoregan.gans.restore_unet import RestoreUNet

    torch.manual_seed(0)
    arch = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 4, "num_levels": 1, "num_conv": 1}
    net = RestoreUNet(num_feat=4, num_levels=1, num_conv=1)
    save_export(Path(folder) / "generator", net, arch, {"task": task_named("restore", grey=False).config(), "scale": 1})
    return Path(folder) / "generator.yaml"


def run_identity(identity: Path, clip: Path, out: Path, *overrides: str) -> Path:
    """infer.py (in process, on the CPU) with the identity export on `clip` into folder `out`, lossless-ish
    (crf 0), no contact sheet; returns the video written."""
    import torch

    from pipeline_utils import compose_infer, infer_module

    cfg = compose_infer(["device=cpu", f"ckpt={identity}", f"input={clip}", f"output={out}", "video.crf=0",
                         "video.contact_frames=0", *overrides])
    with torch.no_grad():
        (written,) = infer_module().infer(cfg)
    return written
