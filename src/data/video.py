"""Frames from a video file (PyAV) or a folder of frames, and scene-cut / duplicate-frame detection.

Frames are (H, W, 3) float32 RGB in [0, 1], as everywhere in the framework. A source is either a video file
(anything FFmpeg decodes) or a folder of images in natural order (`frame_2` before `frame_10`, see
`restoregan.data.io.list_images`). Bad input raises `VideoReadError` (a ValueError) with a one-line message
starting with the path: missing, not a video, corrupt, no video stream, frames of different sizes, fewer
frames than interpolation needs.

Scene cuts: a cut lies between two frames when both their grey-level histograms (total-variation distance)
and their pixels (mean absolute difference at 64 px width) differ strongly. Needing both keeps camera pans
(pixels change, histogram stays) and the flicker of old film (histogram shifts, content stays) from counting
as cuts. On the shared newsreel clip its three cuts score histogram distances 0.53-0.76 and mean differences
0.22-0.42, while motion and flashes stay below 0.24 and 0.10.

Colour: a video's YUV samples mean RGB only through its matrix and range (and its primaries and transfer say
which RGB). `ColourInfo` holds what the stream says; what it leaves unsaid is guessed as players guess (BT.601 below
720 lines, BT.709 at and above, limited range). Frames are converted to RGB with it, and `VideoWriter` converts back
with it and writes it as tags, so a 480p film upscaled to 1080p is not then read as BT.709 by a player.

Depth: a stream of more than 8 bits per sample (yuv420p10le, ...) is decoded to 16-bit RGB (`Frame.image` is float32
either way, so it keeps the finer levels); `VideoWriter` writes 10-bit formats when asked (`depth`), converting from
16-bit RGB.

Interlacing: a stream whose field order says interlaced (tt, bb, tb, bt), or whose first frames look combed
(`combing`: lines that stand out from both neighbours, the other field, while each field alone is smooth), can be
deinterlaced on decoding (`iter_frames(deinterlace=True)`: FFmpeg's bwdif, one frame out per frame in, on the
decoded YUV samples before any conversion, timestamps kept).

Writing: `VideoWriter` encodes frames at explicit timestamps (H.264 with a CRF, lossless FFV1, ...) into an mp4,
mov or Matroska container and can carry every audio and subtitle stream of another file along (`AudioCarrier`:
packets copied when the container takes their codec, else re-encoded to AAC; `SubtitleCarrier`: copied, text
subtitles converted between mov_text and SubRip when the container takes only the other, bitmap ones it cannot
hold left out with a note).
"""

from __future__ import annotations

import errno
import re
import struct
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import cv2
import numpy as np
from av.video.reformatter import Colorspace, ColorRange, Interpolation
from tqdm import tqdm

from restoregan.data.io import ImageReadError, list_images, read_image

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif", ".wmv", ".flv"}


class VideoReadError(ValueError):
    """A video or frame folder that cannot be used; the message starts with its path."""


@dataclass
class Frame:
    index: int
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    name: str  # file name in a folder, "frame_000042" in a video
    pts: int | None = None  # presentation timestamp in the stream's time_base (videos only)


# FFmpeg's numbers (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic), as PyAV reports them
UNSPECIFIED = 2  # matrix, primaries and transfer alike
RGB_MATRIX = 0
LIMITED, FULL = 1, 2  # "tv" (16-235) and "pc" (0-255) range; 0 is unspecified
BT709, BT470BG, SMPTE170M = 1, 5, 6  # BT.709; BT.601 625-line (PAL) and 525-line (NTSC)
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc",
                 10: "bt2020c"}
# the matrices swscale converts with (its own numbering); others (YCgCo, ...) fall back to the size's guess
_SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
               7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
# full-chroma, accurately rounded conversions: within a level of the exact BT.601/709 arithmetic
_SWS_FLAGS = (Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
              | Interpolation.FULL_CHR_H_INP)


@dataclass(frozen=True)
class ColourInfo:
    """How a video's samples map to colour: matrix (colorspace), range, primaries and transfer, in FFmpeg's numbers.
    `tagged`: the file named its matrix (else it and any other unnamed field were guessed, see `guess_colour`)."""

    matrix: int = BT709
    range: int = LIMITED
    primaries: int = BT709
    transfer: int = BT709
    tagged: bool = True

    def __str__(self) -> str:
        matrix = _MATRIX_NAMES.get(self.matrix, str(self.matrix))
        return f"{matrix}/{'pc' if self.range == FULL else 'tv'}{'' if self.tagged else ' (guessed)'}"

    @property
    def sws_matrix(self) -> Colorspace:
        return _SWS_MATRIX.get(self.matrix, Colorspace.ITU709)

    @property
    def sws_range(self) -> ColorRange:
        return ColorRange.JPEG if self.range == FULL else ColorRange.MPEG


def guess_colour(height: int) -> ColourInfo:
    """What players assume of an untagged video `height` lines high: BT.601 below 720 (PAL primaries at 576/288
    lines, NTSC's otherwise), BT.709 at and above; limited range."""
    if height >= 720:
        return ColourInfo(BT709, LIMITED, BT709, BT709, tagged=False)
    sd = BT470BG if height in (576, 288) else SMPTE170M
    return ColourInfo(sd, LIMITED, sd, SMPTE170M, tagged=False)


def _named(value: int) -> bool:
    return value not in (0, UNSPECIFIED, 3)  # reserved, unspecified, reserved


def stream_colour(stream: av.video.stream.VideoStream) -> ColourInfo:
    """A video stream's colour description: its tags, with what they leave unsaid guessed from its height."""
    cc = stream.codec_context
    fmt = cc.format
    if fmt is not None and fmt.is_rgb:  # no matrix to apply (FFV1 RGB, PNG in a container, ...)
        return ColourInfo(RGB_MATRIX, FULL, cc.color_primaries if _named(cc.color_primaries) else BT709,
                          cc.color_trc if _named(cc.color_trc) else BT709, tagged=False)
    guess = guess_colour(cc.height)
    full = fmt is not None and fmt.name.startswith("yuvj")  # the old full-range formats carry no range tag
    tagged = cc.colorspace in _SWS_MATRIX
    return ColourInfo(
        cc.colorspace if tagged else guess.matrix,
        cc.color_range if cc.color_range in (LIMITED, FULL) else FULL if full else guess.range,
        cc.color_primaries if _named(cc.color_primaries) else guess.primaries,
        cc.color_trc if _named(cc.color_trc) else guess.transfer,
        tagged=tagged,
    )


def format_bits(pix_fmt: str | av.VideoFormat | None) -> int:
    """Bits per sample of a pixel format (its deepest component; 8 when unknown)."""
    if pix_fmt is None:
        return 8
    fmt = av.VideoFormat(pix_fmt) if isinstance(pix_fmt, str) else pix_fmt
    return max((c.bits for c in fmt.components), default=8)


def stream_bits(stream: av.video.stream.VideoStream) -> int:
    """Bits per sample the stream's frames decode to (8 for 8-bit and unknown formats)."""
    return format_bits(stream.codec_context.format)


# FFmpeg's AVFieldOrder: how a stream's frames hold fields
FIELD_UNKNOWN, PROGRESSIVE, FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT = range(6)
INTERLACED = (FIELD_TT, FIELD_BB, FIELD_TB, FIELD_BT)


def _frame_rgb(frame: av.VideoFrame, colour: ColourInfo, deep: bool = False) -> np.ndarray:
    """(H, W, 3) RGB of a decoded frame (uint8, or uint16 when `deep`), converted with the frame's own tags where it
    has them (they may change mid-stream), else the stream's description."""
    rgb = "gbrp16le" if deep else "rgb24"  # planar: swscale's packed rgb48le path with full-chroma flags garbles rows
    if frame.format.is_rgb:
        return frame.to_ndarray(format=rgb)
    if frame.colorspace in _SWS_MATRIX or frame.color_range in (LIMITED, FULL):
        colour = ColourInfo(frame.colorspace if frame.colorspace in _SWS_MATRIX else colour.matrix,
                            frame.color_range if frame.color_range in (LIMITED, FULL) else colour.range)
    return frame.to_ndarray(format=rgb, src_colorspace=colour.sws_matrix, src_color_range=colour.sws_range,
                            interpolation=_SWS_FLAGS)


# --- interlacing -------------------------------------------------------------------------------------------
COMB_STEP = 0.04  # a line stands out from both neighbours by more than this (about 10 levels of 255)


def _zigzag(grey: np.ndarray, step: float) -> float:
    """Share of inner lines' pixels that are a vertical extreme by more than `step` on both sides."""
    mid = grey[1:-1]
    return float((((mid - grey[:-2]) * (mid - grey[2:])) > step * step).mean()) if len(grey) > 2 else 0.0


def combing(image: np.ndarray, step: float = COMB_STEP) -> tuple[float, float]:
    """(frame, fields): how combed a frame looks. `frame` is the share of pixels whose line stands out from both
    neighbouring lines (the other field) by more than `step`; `fields` the same within each field alone (lines two
    apart). Two fields of a moving picture woven together zig-zag at every moving edge while each field is smooth;
    fine progressive texture zig-zags in the fields too."""
    grey = image.mean(axis=-1, dtype=np.float32)
    return _zigzag(grey, step), 0.5 * (_zigzag(grey[0::2], step) + _zigzag(grey[1::2], step))


def looks_combed(images: list[np.ndarray], step: float = COMB_STEP) -> bool:
    """Whether frames look interlaced: on average at least 1 % of pixels combed and three times as many as within
    the fields (still frames comb nowhere and cannot tell; they do not count against)."""
    if not images:
        return False
    scores = np.array([combing(img, step) for img in images])
    frame, fields = scores.mean(axis=0)
    return bool(frame > 0.01 and frame > 3 * fields)


def _pull_all(graph: av.filter.Graph) -> list[av.VideoFrame]:
    out = []
    while True:
        try:
            out.append(graph.pull())
        except (BlockingIOError, EOFError, av.error.BlockingIOError, av.error.EOFError):
            return out


def deinterlaced(frames: Iterator[av.VideoFrame], stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """`frames` of `stream` through FFmpeg's bwdif (every frame, one frame out per frame in), each keeping its
    input's pts. Field parity from the stream's field order, else the frames' flags (top first when unflagged)."""
    parity = {FIELD_TT: "tff", FIELD_BT: "tff", FIELD_BB: "bff", FIELD_TB: "bff"}.get(
        stream.codec_context.field_order, "auto")
    graph = None
    times: deque[int | None] = deque()
    for frame in frames:
        if graph is None:  # built on the first frame: the stream's format is known only once one is decoded
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=stream.time_base)
            bwdif = graph.add("bwdif", f"mode=send_frame:parity={parity}:deint=all")
            source.link_to(bwdif)
            bwdif.link_to(graph.add("buffersink"))
            graph.configure()
        times.append(frame.pts)
        graph.push(frame)
        for out in _pull_all(graph):
            out.pts = times.popleft()  # the filter works in its own time base (doubled); ours are the input's
            yield out
    if graph is not None:
        graph.push(None)
        for out in _pull_all(graph):
            out.pts = times.popleft()
            yield out


@dataclass
class VideoInfo:
    path: Path
    is_folder: bool
    fps: Fraction | None  # average frame rate (None for a folder)
    time_base: Fraction | None
    frames: int | None  # count if known up front (folders: always; videos: from the container, may be 0)
    size: tuple[int, int] | None = None  # (H, W), videos only
    colour: ColourInfo | None = None  # videos only (folders hold RGB images)
    bits: int = 8  # bits per sample (a 10-bit video: 10); folders: 8
    field_order: int = FIELD_UNKNOWN  # FFmpeg's AVFieldOrder of a video's stream

    @property
    def interlaced(self) -> bool:
        """The stream says its frames hold two fields (tt, bb, tb or bt)."""
        return self.field_order in INTERLACED


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _folder_files(path: Path) -> list[Path]:
    try:
        return list_images(path)
    except ImageReadError as err:
        raise VideoReadError(str(err)) from None


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: not a readable video ({_first_line(err)})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: holds no video stream")
    return container


def probe(source: str | Path) -> VideoInfo:
    """What a source holds, without decoding it all (a video's frame count comes from its header)."""
    path = Path(source)
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or directory")
    if path.is_dir():
        return VideoInfo(path, True, None, None, len(_folder_files(path)))
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        size = (stream.codec_context.height, stream.codec_context.width)
        return VideoInfo(path, False, Fraction(fps) if fps else None, Fraction(stream.time_base), stream.frames, size,
                         stream_colour(stream), stream_bits(stream), stream.codec_context.field_order)


def iter_frames(source: str | Path, complete: bool = False, deinterlace: bool = False) -> Iterator[Frame]:
    """Decode frames one by one (video: in presentation order, with their pts), checking sizes agree.

    `complete`: also raise when a video decodes fewer frames than its header promises (a truncated file whose
    index survived, or damaged data the decoder skipped), instead of ending early without a word.
    `deinterlace`: run a video's frames through bwdif first (see `deinterlaced`)."""
    path = Path(source)
    size = None
    count = 0
    expected = probe(path).frames if complete and not path.is_dir() else None
    for frame in _iter_unchecked(path, deinterlace):
        count += 1
        if size is None:
            size = frame.image.shape
        elif frame.image.shape != size:
            where = f"{path / frame.name}" if path.is_dir() else f"{path}: frame {frame.index}"
            raise VideoReadError(
                f"{where}: size {frame.image.shape[1]}x{frame.image.shape[0]} differs from the first frame's "
                f"{size[1]}x{size[0]}; all frames must share one size"
            )
        yield frame
    if expected and count < expected:
        raise VideoReadError(f"{path}: truncated or corrupt: its header promises {expected} frames, "
                             f"only {count} decode")


def _iter_unchecked(path: Path, deinterlace: bool = False) -> Iterator[Frame]:
    if not path.exists():
        raise VideoReadError(f"{path}: no such file or directory")
    if path.is_dir():
        for i, file in enumerate(_folder_files(path)):
            yield Frame(i, read_image(file), file.name)
        return
    with _open(path) as container:
        stream = container.streams.video[0]
        colour = stream_colour(stream)
        deep = stream_bits(stream) > 8
        scale = np.float32(65535.0 if deep else 255.0)
        try:
            decoded = container.decode(stream)
            for i, frame in enumerate(deinterlaced(decoded, stream) if deinterlace else decoded):
                rgb = _frame_rgb(frame, colour, deep).astype(np.float32) / scale
                yield Frame(i, rgb, f"frame_{i:06d}", frame.pts)
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{path}: corrupt video, decoding failed ({_first_line(err)})") from None


def read_frames(source: str | Path, min_frames: int = 2, max_frames: int | None = None) -> list[Frame]:
    """All frames (up to `max_frames`) of a video or frame folder; at least `min_frames` of them."""
    frames = []
    for frame in iter_frames(source):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if len(frames) < min_frames:
        what = "no frames" if not frames else f"only {len(frames)} frame{'s' if len(frames) > 1 else ''}"
        raise VideoReadError(f"{source}: holds {what}; frame interpolation needs at least {min_frames}")
    return frames


# --- scene cuts and duplicates ---------------------------------------------------------------------
def signature(image: np.ndarray, width: int = 64, bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(small grey image, normalised grey histogram) of a frame: what cut and duplicate tests compare."""
    grey = image.mean(axis=-1, dtype=np.float32)
    h, w = grey.shape
    small = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    hist = np.histogram(grey, bins=bins, range=(0.0, 1.0))[0] / grey.size
    return small, hist


@dataclass
class SceneCutDetector:
    """`is_cut(a, b)` for consecutive frames; thresholds as in the module docstring."""

    hist_threshold: float = 0.35  # total-variation distance of grey histograms, in [0, 1]
    diff_threshold: float = 0.12  # mean absolute grey difference at 64 px width, in [0, 1]

    def scores(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        (sa, ha), (sb, hb) = signature(a), signature(b)
        return 0.5 * float(np.abs(ha - hb).sum()), float(np.abs(sa - sb).mean())

    def is_cut(self, a: np.ndarray, b: np.ndarray) -> bool:
        hist, diff = self.scores(a, b)
        return hist > self.hist_threshold and diff > self.diff_threshold

    def cuts(self, images: list[np.ndarray]) -> list[int]:
        """Indices i such that a cut lies between images[i - 1] and images[i]."""
        return [i for i in range(1, len(images)) if self.is_cut(images[i - 1], images[i])]


def duplicate_frames(images: list[np.ndarray], threshold: float = 0.004) -> list[int]:
    """Indices of frames that repeat the previous kept frame (mean absolute difference below `threshold`):
    the pulldown copies of film transferred to a higher video rate (24 -> 29.97 fps repeats every 4th; on the
    shared newsreel clip 0.004 finds 70 of its 360 frames, about the 72 that pattern predicts)."""
    dups, last = [], images[0] if images else None
    for i in range(1, len(images)):
        if float(np.abs(images[i] - last).mean()) < threshold:
            dups.append(i)
        else:
            last = images[i]
    return dups


def windows_without_cuts(n: int, span: int, cuts: list[int], step: int = 1) -> list[int]:
    """Start indices i of windows i, i + step, ..., i + span (inclusive) in n frames that contain no cut."""
    cut_set = set(cuts)
    return [i for i in range(0, n - span, step) if not any(c in cut_set for c in range(i + 1, i + span + 1))]


# --- writing -----------------------------------------------------------------------------------------
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # what VideoWriter writes


def container_for(path: str | Path) -> str:
    """FFmpeg muxer name for an output file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise ValueError(f"{path}: cannot write a video with suffix {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(sorted(CONTAINERS))}")
    return CONTAINERS[path.suffix.lower()]


def has_audio(source: str | Path) -> bool:
    path = Path(source)
    if path.is_dir():
        return False
    with _open(path) as container:
        return bool(container.streams.audio)


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """Whether the format halves its chroma horizontally, vertically (ValueError: not a pixel format)."""
    components = av.VideoFormat(pix_fmt, 2, 2).components
    return any(c.width < 2 for c in components), any(c.height < 2 for c in components)


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        return np.round(img / np.float32(257.0)).astype(np.uint8)
    return img if img.dtype == np.uint8 else np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _to_uint16(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.uint16) * 257
    return img if img.dtype == np.uint16 else np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)


def as_levels(img: np.ndarray, deep: bool = False) -> np.ndarray:
    """A frame as the integer levels an encoder is fed: uint8, or uint16 when `deep` (floats clipped to [0, 1]
    and rounded, as `VideoWriter.write` does)."""
    return _to_uint16(img) if deep else _to_uint8(img)


_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class _Carrier:
    """Packets of one stream of `source` muxed into `container` beside the video, in step with it: `until(t)` muxes
    what starts before t seconds (call it as the video advances, so the file is interleaved), `finish()` the rest;
    packets starting at or after `end` seconds are dropped (a shortened video keeps only its own sound and text).
    Timestamps are the input's, like the video's, so they stay in sync. Subclasses add the output stream
    (`self.stream`) and say how a packet goes in (`_put`)."""

    kind = "stream"

    def __init__(self, source: str | Path, container: av.container.OutputContainer, end: float | None,
                 index: int) -> None:
        self.source, self.end, self.container = Path(source), end, container
        self.input = _open(self.source)
        streams = getattr(self.input.streams, self.kind)
        if index >= len(streams):
            self.input.close()
            raise VideoReadError(f"{self.source}: holds no {self.kind} stream {index}")
        self.in_stream = streams[index]
        self.packets = self.input.demux(self.in_stream)
        self.pending: av.Packet | None = None
        self.done = False

    def _next(self) -> av.Packet | None:
        if self.pending is None and not self.done:
            for packet in self.packets:
                if packet.dts is not None or packet.pts is not None:  # the demuxer's final empty packet has neither
                    self.pending = packet
                    break
            else:
                self.done = True
        return self.pending

    @staticmethod
    def _time(packet: av.Packet) -> float:
        return float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)

    def _put(self, packet: av.Packet) -> None:
        packet.stream = self.stream
        self.container.mux(packet)

    def until(self, seconds: float) -> None:
        while (packet := self._next()) is not None and self._time(packet) < seconds:
            self.pending = None
            if self.end is not None and self._time(packet) >= self.end:
                continue
            self._put(packet)

    def _flush(self) -> None:
        pass

    def finish(self) -> None:
        try:
            self.until(float("inf"))
            self._flush()
        finally:
            self.input.close()

    def close(self) -> None:
        self.input.close()


class AudioCarrier(_Carrier):
    """Audio stream `index` of `source` carried into `container` (see `_Carrier`). Packets are copied untouched
    when the container accepts their codec (AAC, MP3, PCM, ... in mp4; anything in Matroska), else decoded and
    re-encoded to AAC."""

    kind = "audio"

    def __init__(self, source: str | Path, container: av.container.OutputContainer, end: float | None = None,
                 index: int = 0) -> None:
        super().__init__(source, container, end, index)
        self.copied = self.in_stream.codec_context.name in container.supported_codecs
        if self.copied:
            self.stream = container.add_stream_from_template(self.in_stream)
        else:
            self.stream = container.add_stream("aac", rate=self.in_stream.codec_context.sample_rate)
            layout = self.in_stream.codec_context.layout
            if layout.name.endswith(" channels"):  # an unspecified order (PCM from Matroska, ...): AAC refuses it
                layout = _DEFAULT_LAYOUTS.get(len(layout.channels), layout.name)
            self.stream.layout = layout

    def _put(self, packet: av.Packet) -> None:
        if self.copied:
            super()._put(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{self.source}: corrupt audio, decoding failed ({_first_line(err)})") from None
        for frame in frames:
            self.container.mux(self.stream.encode(frame))

    def _flush(self) -> None:
        if not self.copied:
            self.container.mux(self.stream.encode(None))


TEXT_SUBTITLES = {"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"}
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
               b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


def _plain_text(ass_event: bytes) -> str:
    """The words of one of FFmpeg's decoded text-subtitle events (ReadOrder, Layer, Style, Name, margins, Effect,
    Text): style overrides ({...}) dropped, ASS line breaks made newlines."""
    text = ass_event.decode("utf-8", "replace").split(",", 8)[-1]
    return re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")


class SubtitleCarrier(_Carrier):
    """Subtitle stream `index` of `source` carried into `container` (see `_Carrier`): copied when the container
    takes its codec, else text subtitles are rewritten as the text codec it takes (mov_text for mp4/mov, SubRip for
    Matroska), words and timing kept, styling dropped. ValueError (nothing added) when neither works: bitmap
    subtitles (DVD, Blu-ray) in mp4."""

    kind = "subtitles"

    def __init__(self, source: str | Path, container: av.container.OutputContainer, end: float | None = None,
                 index: int = 0) -> None:
        super().__init__(source, container, end, index)
        codec = self.in_stream.codec_context.name
        self.target = None  # the codec text is rewritten into; None = copied
        if codec not in container.supported_codecs:
            self.target = next((c for c in ("mov_text", "subrip") if c in container.supported_codecs), None)
            if codec not in TEXT_SUBTITLES or self.target is None:
                self.input.close()
                raise ValueError(f"{self.source}: its {codec} subtitles (stream {index}) cannot go into "
                                 f"{container.format.name} and are no text to convert; left out")
        if self.target is None:
            self.stream = container.add_stream_from_template(self.in_stream)
        else:
            self.stream = container.add_stream(self.target)
            self.stream.codec_context.subtitle_header = _ASS_HEADER  # the encoders want one to open
            self.stream.time_base = self.in_stream.time_base
        language = self.in_stream.metadata.get("language")
        if language:
            self.stream.metadata["language"] = language

    def _put(self, packet: av.Packet) -> None:
        if self.target is None:
            super()._put(packet)
            return
        try:
            events = self.in_stream.decode(packet)
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{self.source}: corrupt subtitles, decoding failed ({_first_line(err)})") from None
        text = "\n".join(_plain_text(e.ass) for e in events if getattr(e, "ass", None)).encode()
        if not text:
            return
        data = struct.pack(">H", len(text)) + text if self.target == "mov_text" else text
        out = av.Packet(data)
        out.pts = out.dts = packet.pts if packet.pts is not None else packet.dts
        out.duration, out.time_base, out.stream = packet.duration, packet.time_base, self.stream
        self.container.mux(out)


def carriers(source: str | Path, container: av.container.OutputContainer, end: float | None, audio: bool,
             subtitles: bool) -> list[_Carrier]:
    """A carrier for every audio stream (`audio`) and subtitle stream (`subtitles`) of `source`; a subtitle stream
    the container cannot hold is left out with a one-line note."""
    with _open(Path(source)) as probe_container:
        n_audio = len(probe_container.streams.audio) if audio else 0
        n_subs = len(probe_container.streams.subtitles) if subtitles else 0
    made: list[_Carrier] = []
    try:
        made += [AudioCarrier(source, container, end, i) for i in range(n_audio)]
        for i in range(n_subs):
            try:
                made.append(SubtitleCarrier(source, container, end, i))
            except ValueError as err:
                tqdm.write(str(err), file=sys.stderr)
    except BaseException:
        for carrier in made:
            carrier.close()
        raise
    return made


class VideoWriter:
    """PyAV encoder of (H, W, 3) frames (float RGB in [0, 1], or uint8) into `path` (a temp file from
    restoregan.atomic.atomic_write, so the finished name appears only when complete). Frames carry their own
    pts in time base `tb`, so input timestamps (and variable frame rates) survive; without pts they are
    numbered at `rate`.

    `codec`: libx264 (with `crf`), ffv1 (lossless), or any FFmpeg video encoder; `pix_fmt="auto"` picks yuv420p
    for H.264 when both sides are even (plays everywhere), else yuv444p, and bgr0 (lossless RGB) for FFV1; with
    `depth=10`, yuv420p10le / yuv444p10le and gbrp10le (`depth=16`: gbrp16le for FFV1). Frames may be uint8, uint16
    or float; a format of more than 8 bits is fed from 16-bit RGB. A
    chroma-subsampled pix_fmt (yuv420p, yuv422p, nv12, ...) cannot hold an odd side: such frames are encoded in
    the codec's unsubsampled format (yuv444p for H.264; the exact picture at its size) with a one-line notice.
    `container_format`: mp4 | mov | matroska (the temp file's name has no telling suffix). `audio_from`: a file
    whose audio streams are carried along (see `AudioCarrier`), cut at `audio_end` seconds when given;
    `subtitles_from`: the same for its subtitle streams (`SubtitleCarrier`).
    `name`: the output the user asked for, named in messages instead of the temp file; `config`: the block of
    the options (`restore` -> `restore.pix_fmt`, `restore.codec`), named in messages as what to change.
    `colour`: the matrix and range RGB frames are converted to YUV with, and the tags written (primaries and
    transfer too), so players read back the colours given; by default (and for an RGB source's description) BT.709
    limited range. RGB pixel formats (bgr0) take no matrix: only primaries and transfer are tagged. `field_order`:
    FFmpeg's AVFieldOrder to tag (default progressive; None leaves it unset)."""

    def __init__(
        self,
        path: str | Path,
        rate: Fraction,
        codec: str = "libx264",
        crf: int | None = 18,
        pix_fmt: str = "yuv420p",
        container_format: str = "mp4",
        audio_from: str | Path | None = None,
        audio_end: float | None = None,
        name: str | Path | None = None,
        config: str | None = None,
        colour: ColourInfo | None = None,
        depth: int = 8,
        subtitles_from: str | Path | None = None,
        field_order: int | None = PROGRESSIVE,
    ) -> None:
        self.path = Path(path)
        self.colour, self.depth, self.field_order = colour, depth, field_order
        self.name = Path(name) if name is not None else self.path
        self.pix_fmt_key = f"{config}.pix_fmt" if config else "pix_fmt"
        self.container = av.open(str(path), mode="w", format=container_format)
        self.rate = Fraction(rate).limit_denominator(100000)
        try:
            self.stream = self.container.add_stream(codec, rate=self.rate)
        except (ValueError, av.error.FFmpegError) as err:  # UnknownCodecError is a ValueError
            self.container.close()
            key = f"{config}.codec" if config else "codec"
            raise ValueError(f"{self.name}: this FFmpeg cannot encode video with {codec!r} ({_first_line(err)}); "
                             f"set {key}= another encoder, e.g. libx264") from None
        self.pix_fmt = pix_fmt
        if crf is not None:
            self.stream.options = {"crf": str(crf)}
        self.carried: list[_Carrier] = []
        try:  # streams must all exist before the first packet is muxed
            for source, audio in ((audio_from, True), (subtitles_from, False)):
                if source is not None:
                    self.carried += carriers(source, self.container, audio_end, audio, not audio)
        except BaseException:
            for carrier in self.carried:
                carrier.close()
            self.container.close()
            raise
        self.opened, self.failed, self.count = False, False, 0

    def _choose_pix_fmt(self, h: int, w: int) -> str:
        codec = self.stream.codec_context.name
        if self.pix_fmt == "auto":
            deep = "" if self.depth <= 8 else "10le" if self.depth <= 10 else "16le"
            if codec == "ffv1":
                return f"gbrp{deep}" if deep else "bgr0"
            return f"yuv444p{deep}" if h % 2 or w % 2 else f"yuv420p{deep}"
        try:
            sub_w, sub_h = _subsampled(self.pix_fmt)
        except ValueError:
            raise ValueError(f"{self.name}: {self.pix_fmt_key}={self.pix_fmt} is not a pixel format FFmpeg knows; "
                             "use e.g. yuv420p, yuv444p or auto") from None
        if not ((sub_w and w % 2) or (sub_h and h % 2)):
            return self.pix_fmt
        formats = av.Codec(codec, "w").video_formats or ()
        whole = [f.name for f in formats if len(f.components) >= 3 and not any(_subsampled(f.name))]
        if not whole:  # e.g. mpeg4 knows only yuv420p, and pads odd sides itself
            return self.pix_fmt
        same_depth = [f for f in whole if format_bits(f) == format_bits(self.pix_fmt)]
        want = "yuv444p10le" if format_bits(self.pix_fmt) > 8 else "yuv444p"
        choice = want if want in whole else (same_depth or whole)[0]
        tqdm.write(f"{self.name}: frames are {w}x{h}; {self.pix_fmt} needs even sides, so encoding {choice} "
                   f"instead (exact size; some players, e.g. browsers, play only yuv420p: set {self.pix_fmt_key} "
                   "to choose)", file=sys.stderr)  # its own line, also under a progress bar
        return choice

    def _open(self, h: int, w: int, tb: Fraction | None) -> None:
        pix_fmt = self._choose_pix_fmt(h, w)
        try:
            self.stream.pix_fmt = pix_fmt
        except ValueError as err:
            raise ValueError(f"{self.name}: {self.pix_fmt_key}={pix_fmt}: {_first_line(err)}") from None
        self.stream.width, self.stream.height = w, h
        self._tag_colour(av.VideoFormat(pix_fmt).is_rgb)
        self.deep = format_bits(pix_fmt) > 8
        if self.field_order is not None:
            cc = self.stream.codec_context
            cc.field_order = self.field_order
            if self.field_order in INTERLACED:  # woven fields kept (deinterlacing off): coded as fields, so it says so
                cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
                if cc.name == "libx264":
                    top = self.field_order in (FIELD_TT, FIELD_BT)
                    self.stream.options = {**self.stream.options, "tff" if top else "bff": "1"}
        # kept apart: muxers may change the stream's time base once the header is written (Matroska to
        # 1/1000, mp4 to a finer one), and frames must be read in the base their pts were given in
        self.tb = tb if tb is not None else 1 / self.rate
        self.stream.time_base = self.stream.codec_context.time_base = self.tb
        self.opened = True

    def _tag_colour(self, rgb: bool) -> None:
        """The output's colour description (`self.yuv`: what frames are converted with, None for RGB), set on the
        encoder before it opens, so H.264's VUI and the container's colour atom carry it."""
        given = self.colour if self.colour is not None else ColourInfo()
        cc = self.stream.codec_context
        if rgb:
            self.yuv = None
            cc.colorspace, cc.color_range = RGB_MATRIX, FULL
        else:
            matrix = given.matrix if given.matrix in _SWS_MATRIX else BT709
            self.yuv = ColourInfo(matrix, given.range if given.range in (LIMITED, FULL) else LIMITED,
                                  given.primaries, given.transfer)
            cc.colorspace, cc.color_range = self.yuv.matrix, self.yuv.range
        cc.color_primaries, cc.color_trc = given.primaries, given.transfer

    def write(self, img: np.ndarray, pts: int | None = None, tb: Fraction | None = None) -> None:
        try:
            self._write(img, pts, tb)
        except BaseException:
            self.failed = True
            raise

    def _write(self, img: np.ndarray, pts: int | None, tb: Fraction | None) -> None:
        h, w = img.shape[:2]
        first = not self.opened
        if first:
            self._open(h, w, tb)
        if self.deep:  # the encoder's format holds more than 8 bits: fed from 16-bit RGB
            frame = av.VideoFrame.from_ndarray(_to_uint16(img), format="gbrp16le")  # planar: see _frame_rgb
        else:
            frame = av.VideoFrame.from_ndarray(_to_uint8(img), format="rgb24")
        if self.yuv is not None:  # converted here, with the output's matrix (the encoder would assume BT.601)
            frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace=self.yuv.sws_matrix,
                                   dst_color_range=self.yuv.sws_range, interpolation=_SWS_FLAGS)
        frame.pts = pts if pts is not None else self.count
        frame.time_base = self.tb
        try:
            packets = self.stream.encode(frame)
        except av.error.FFmpegError as err:
            if not first or isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
                raise
            # the encoder refused to open: a format or size it does not take
            raise ValueError(f"{self.name}: {self.stream.codec_context.name} cannot encode {w}x{h} frames as "
                             f"{self.stream.pix_fmt} ({_first_line(err)}); set {self.pix_fmt_key}= another "
                             "pixel format (auto, yuv444p)") from None
        for packet in packets:
            self.container.mux(packet)
        for carrier in self.carried:
            carrier.until(float(frame.pts * frame.time_base))
        self.count += 1

    def end_carried_at(self, seconds: float | None) -> None:
        """Cut the carried audio and subtitles at `seconds` (None: keep all), when the end is known only after
        the last frame; packets are muxed as the video reaches them, so none past a later frame is in yet."""
        for carrier in self.carried:
            carrier.end = seconds

    def close(self) -> None:
        if self.failed:  # after a failed write the file is abandoned: flushing would only raise again
            for carrier in self.carried:
                carrier.close()
            try:
                self.container.close()
            except (OSError, ValueError, av.error.FFmpegError):
                pass
            return
        try:
            if self.opened:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            for carrier in self.carried:
                carrier.finish()
        finally:
            for carrier in self.carried:
                carrier.close()
            self.container.close()


def copy_audio(source: str | Path, path: str | Path, end: float | None = None) -> bool:
    """The first audio stream of `source` alone into a Matroska file `path` (takes any codec: always a copy);
    False, writing nothing, when `source` has none. For outputs that cannot hold sound, such as PNG frames."""
    if not has_audio(source):
        return False
    with av.open(str(path), mode="w", format="matroska") as container:
        AudioCarrier(source, container, end).finish()
    return True
