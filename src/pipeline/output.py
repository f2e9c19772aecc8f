"""The finished film from its segments: one encode (H.264 with a CRF, lossless FFV1, or PNG frames) with the
input's audio and subtitle streams and colour description (restoregan.data.video.ColourInfo) carried over, at 10
bits per sample for a deeper input (16-bit PNGs), tagged progressive once deinterlaced, written to a temp name and
renamed only when complete; optionally a before | after video, and a contact sheet of a few frames (input |
output, shrunk, then the output's most detailed CONTACT_CROP square at full resolution beside the same region of
the input at the output's size)."""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from restoregan.atomic import Staged
from restoregan.data.io import write_image
from restoregan.data.video import (PROGRESSIVE, ColourInfo, VideoWriter, as_levels, container_for, copy_audio,
                                   has_audio, iter_frames)
from restoregan.pipeline.background import POLL_S
from restoregan.pipeline.segments import Segment, WorkDir
from restoregan.tasks.base import Item
from restoregan.grids import detail_box, grid_image

FORMATS = ("h264", "ffv1", "png")
SUFFIXES = {"h264": ".mp4", "ffv1": ".mkv", "png": ""}  # what infer.py names a single model's video output
OutFrame = tuple[int, int, Fraction, np.ndarray]  # (input index, pts, time base, (H, W, 3) uint8 or uint16)


def _check_format(fmt: str) -> None:
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"video.format={fmt}: must be auto, {', '.join(FORMATS)}")


def named_output(folder: Path, stem: str, fmt: str, frames_in: bool) -> Path:
    """`folder/<stem>.mp4` (h264), `.mkv` (ffv1) or `folder/<stem>/` (png) for `video.format`; auto: PNG frames for
    a frame-folder input (`frames_in`), H.264 for a video."""
    _check_format(fmt)
    if fmt == "auto":
        fmt = "png" if frames_in else "h264"
    return folder / f"{stem}{SUFFIXES[fmt]}"


def output_format(output: Path, fmt: str) -> str:
    """h264 | ffv1 | png for `video.format` (auto: .mp4/.mov/.m4v -> h264, .mkv -> ffv1, no suffix -> png)."""
    _check_format(fmt)
    suffix = output.suffix.lower()
    if fmt == "auto":
        if not suffix:
            return "png"
        fmt = "ffv1" if suffix == ".mkv" else "h264"
    if fmt == "png":
        if suffix:
            raise ValueError(f"{output}: PNG frames go to a folder; give an output without a suffix")
        return fmt
    container_for(output)  # a suffix we can write
    if fmt == "ffv1" and suffix != ".mkv":
        raise ValueError(f"{output}: FFV1 (lossless) needs a Matroska file; name it .mkv")
    return fmt


@dataclass
class Sinks:
    """Where the frames go; `side_by_side` and `contact` are None when not asked for."""

    output: Path
    fmt: str
    side_by_side: Path | None
    contact: Path | None


def sink_paths(output: Path, fmt: str, side_by_side: bool, contact_frames: int) -> Sinks:
    stem = output.name if fmt == "png" else output.stem
    return Sinks(
        output,
        fmt,
        output.with_name(f"{stem}_side_by_side.mp4") if side_by_side else None,
        output.with_name(f"{stem}_contact.png") if contact_frames > 0 else None,
    )


def _codec(fmt: str) -> str:
    return "ffv1" if fmt == "ffv1" else "libx264"


def check_encoder(sinks: Sinks, crf: int | None, pix_fmt: str, depth: int = 8) -> None:
    """Open the output's encoder on one small frame now, in a scratch folder, so settings it refuses
    (`video.pix_fmt=rgb24` for H.264) end the run in one line before any frame is computed, not after. `depth`:
    the bits per sample `pix_fmt=auto` writes (see VideoWriter)."""
    if sinks.fmt == "png":
        return
    codec = _codec(sinks.fmt)
    with tempfile.TemporaryDirectory(prefix="restoregan_probe_") as scratch:
        writer = VideoWriter(Path(scratch) / "probe", Fraction(24), codec, crf if codec == "libx264" else None,
                             pix_fmt, container_for(sinks.output), name=sinks.output, config="video", depth=depth)
        try:
            writer.write(np.zeros((16, 16, 3), np.uint8))
        finally:
            writer.close()


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """An input frame (uint8 or uint16) at the output's size (bicubic), for comparisons."""
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)


class _InputFrames:
    """Input frames by index, decoded again in one forward pass (indices asked in increasing order), as the
    stages saw them (deinterlaced when they were), in `dtype` (uint8 or uint16) like the output's frames."""

    def __init__(self, source: Path, deinterlace: bool = False, dtype: type = np.uint8) -> None:
        self.frames, self.current = iter_frames(source, deinterlace=deinterlace), None
        self.dtype = dtype

    def get(self, index: int) -> np.ndarray:
        while self.current is None or self.current.index < index:
            self.current = next(self.frames)
        return np.round(self.current.image * np.iinfo(self.dtype).max).astype(self.dtype)


@dataclass
class Encode:
    """How the finished film is written (the `video:` block, resolved): everything `assemble` needs besides the
    frames."""

    sinks: Sinks
    source: Path
    rate: Fraction  # output frame rate
    crf: int
    pix_fmt: str
    audio: bool
    cut_audio: bool  # a shortened film keeps only the sound of its own frames
    contact_frames: int
    contact_side: int
    colour: ColourInfo | None = None
    depth: int = 8
    subtitles: bool = True
    deinterlaced: bool = False
    field_order: int | None = PROGRESSIVE


def assemble(frames: Iterable[OutFrame], n_input: int, enc: Encode,
             cancelled: Callable[[], bool] = lambda: False) -> list[Path]:
    """Encode `frames` (in order) into the outputs (see module docstring); returns them. `n_input`: input frames
    the film has (the contact sheet's rows are spread over them). `enc.colour`: the input's description, kept by
    the videos written (None, e.g. for a frame folder: BT.709); `enc.depth`: bits per sample of the output video
    (10: frames are uint16); `enc.subtitles`: carry the input's subtitle streams; `enc.deinterlaced`: the stages
    saw the input deinterlaced (so the side-by-side shows it so); `enc.field_order`: the tag written. `cancelled`:
    asked once all frames are in; True discards everything written (nothing is renamed into place)."""
    sinks, source = enc.sinks, enc.source
    sheet_at = set(np.linspace(0, n_input - 1, min(enc.contact_frames, n_input)).round().astype(int).tolist())
    sheet_rows: list = []
    carry_audio = enc.audio and has_audio(source)
    last: list[OutFrame] = []

    def audio_end() -> float | None:
        if not enc.cut_audio or not last:
            return None
        _, pts, tb, _ = last[0]
        return float(pts * tb + 1 / enc.rate)

    def compare(stream: Iterable[OutFrame], sbs_tmp: Path | None) -> Iterator[OutFrame]:
        """Pass frames through, writing the side-by-side video and collecting contact-sheet rows on the way."""
        inputs = None
        sbs: VideoWriter | None = None
        if sbs_tmp is not None:
            # 8-bit whatever the depth: a viewing aid, for players that take only yuv420p
            sbs = VideoWriter(sbs_tmp, enc.rate, "libx264", enc.crf, "auto", "mp4", name=sinks.side_by_side,
                              colour=enc.colour)
        try:
            for frame in stream:
                index, pts, tb, img = frame
                before = None
                if sbs is not None or index in sheet_at:
                    if inputs is None:
                        inputs = _InputFrames(source, enc.deinterlaced, img.dtype.type)
                    before = _fit(inputs.get(index), *img.shape[:2])
                if sbs is not None:
                    sbs.write(np.concatenate([before, img], axis=1), pts, tb)
                if index in sheet_at:
                    sheet_at.discard(index)  # the first output frame of that input frame
                    sheet_rows.append(contact_row(index, before, img))
                last[:] = [frame]
                yield frame
        finally:
            if sbs is not None:
                sbs.close()

    # the output, the side-by-side video and the contact sheet are written aside and appear together, only
    # when all are complete: a failure (a full disk, a kill) leaves the previous ones and no partial file
    with Staged(durable=True) as staged:
        sbs_tmp = staged.temp(sinks.side_by_side) if sinks.side_by_side else None
        if sinks.fmt == "png":
            folder = staged.temp_dir(sinks.output)
            _write_png_folder(folder, compare(frames, sbs_tmp), enc.rate, source if carry_audio else None, audio_end)
        else:
            codec = _codec(sinks.fmt)

            def encode(tmp: str) -> None:
                quality = enc.crf if codec == "libx264" else None
                writer = VideoWriter(tmp, enc.rate, codec, quality, enc.pix_fmt, container_for(sinks.output),
                                     source if carry_audio else None, None, name=sinks.output, config="video",
                                     colour=enc.colour, depth=enc.depth, field_order=enc.field_order,
                                     subtitles_from=source if enc.subtitles and not source.is_dir() else None)
                try:
                    for _, pts, tb, img in compare(frames, sbs_tmp):
                        writer.write(img, pts, tb)
                    # known only now; no packet at or past it was muxed yet (they go in as the video reaches them)
                    writer.end_carried_at(audio_end())
                finally:
                    writer.close()

            staged.write(sinks.output, encode)
        if sinks.contact and sheet_rows:
            sheet = grid_image(sheet_rows, max_side=enc.contact_side, full_size=(2, 3))  # crops: full resolution
            staged.write(sinks.contact, lambda tmp: sheet.save(tmp, format="PNG"))
        if cancelled():
            raise _Abort()
        written = [sinks.output, *(t for t in staged.targets() if t != sinks.output)]
    return written


def stored_frames(work: WorkDir, segments: Iterable[Segment], total: int | None = None) -> Iterator[OutFrame]:
    """The frames of finished segments, read back from the work folder in order (a progress bar over `total`
    output frames when given)."""
    with tqdm(total=total, desc="encoding", unit="frame", disable=total is None) as bar:
        for segment in segments:
            for index, pts, img in work.frames(segment):
                yield index, pts, segment.time_base, img
                bar.update(1)


class _Abort(Exception):
    """Raised inside the assembling thread when the computing side failed: its temps are discarded."""


class Assembler:
    """`assemble` beside the models: in a thread that encodes each output frame as soon as it is computed (and
    reads segments a previous run finished back from the work folder), so the final encode, the side-by-side video
    and the contact sheet overlap the forward passes rather than following them. Streams only when the input's
    frame count is known up front (the contact sheet's rows are placed by it); otherwise, and for `threaded=False`,
    everything is encoded from the work folder by `finish`, as one pass after the last segment."""

    DEPTH = 16  # at most this many frames queued between the models and the encoder ...
    QUEUE_BYTES = 256 * 2**20  # ... and at most about this much memory (4K frames: two or three)

    def __init__(self, work: WorkDir, enc: Encode, n_input: int | None, threaded: bool = True) -> None:
        self.work, self.enc, self.n_input = work, enc, n_input
        self.streaming = threaded and n_input is not None and n_input > 0
        self._queue: queue.Queue = queue.Queue(maxsize=self.DEPTH)
        self._sized = False
        self._abort = threading.Event()
        self._result: list[Path] | None = None
        self.error: BaseException | None = None  # the encoder's failure, raised on the computing side
        self._thread: threading.Thread | None = None
        if self.streaming:
            self._thread = threading.Thread(target=self._run, name="assemble", daemon=True)
            self._thread.start()

    # --- the computing side ---------------------------------------------------------------------------
    def tee(self, items: Iterable[Item], deep: bool) -> Iterator[Item]:
        """A computed segment's items as the levels they are stored in (uint8, uint16 when `deep`), each also
        handed to the encoder when streaming."""
        for it in items:
            img = as_levels(it.image, deep)
            if self.streaming:
                if not self._sized:  # the queue holds whole frames: bound its memory by the first one's size
                    self._queue.maxsize = max(2, min(self.DEPTH, self.QUEUE_BYTES // max(1, img.nbytes)))
                    self._sized = True
                self._put((it.index, it.pts, it.tb, img))
            yield Item(it.index, it.pts, it.tb, img)

    def stored(self, segment: Segment) -> None:
        """A segment finished by an earlier run: the encoder reads it from the work folder."""
        if self.streaming:
            self._put(segment)

    def finish(self, segments: list[Segment]) -> list[Path]:
        """Every segment is done: the encode completed (or, not streaming, run now); returns the files written."""
        n_input = segments[-1].end
        if self.streaming and n_input != self.n_input:
            # the header's frame count was wrong: the streamed contact sheet was placed by it; encode again by
            # the frames there are, as a run that does not stream would
            self.abort()
            self.streaming = False
        if not self.streaming:
            total = sum(len(s.items) for s in segments)
            return assemble(stored_frames(self.work, segments, total), n_input, self.enc)
        self._put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._result

    def abort(self) -> None:
        """The computing side failed (or was interrupted): stop the encoder, discarding what it wrote."""
        self._abort.set()
        if self._thread is None:
            return
        try:  # wake an encoder waiting for a frame; a full queue means it is not waiting
            self._queue.put_nowait(_Abort)
        except queue.Full:
            pass
        self._thread.join()

    def _put(self, message: object) -> None:
        while True:
            if self.error is not None:  # the encoder failed: its error is the run's
                raise self.error
            try:
                self._queue.put(message, timeout=POLL_S)
                return
            except queue.Full:
                continue

    # --- the encoding side (its own thread) -----------------------------------------------------------
    def _messages(self) -> Iterator[OutFrame]:
        while True:
            message = self._queue.get()
            if self._abort.is_set() or message is _Abort:
                raise _Abort()
            if message is None:
                return
            if isinstance(message, Segment):
                for frame in stored_frames(self.work, [message]):
                    if self._abort.is_set():
                        raise _Abort()
                    yield frame
            else:
                yield message

    def _run(self) -> None:
        try:
            self._result = assemble(self._messages(), self.n_input, self.enc, cancelled=self._abort.is_set)
        except _Abort:
            pass
        except BaseException as err:  # noqa: BLE001 - raised on the computing side, at its next frame or finish
            self.error = err
            while True:  # unblock the computing side
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break


CONTACT_CROP = 128  # side of the contact sheet's full-resolution crops (output pixels)


def contact_row(index: int, before: np.ndarray, img: np.ndarray) -> list[tuple[str, torch.Tensor]]:
    """A contact-sheet row: input frame `index` (`before`, at the output's size) and output `img`, shrunk by
    grid_image; then, at full resolution, the input and output at the output's most detailed square (labelled
    with its box: x, y, side in output pixels)."""
    top, left, side = detail_box(img, CONTACT_CROP)
    cut = lambda a: a[top : top + side, left : left + side]  # noqa: E731
    return [(f"frame {index} input", _chw(before)), ("output", _chw(img)),
            (f"input x={left} y={top}", _chw(cut(before))), (f"output {side}px", _chw(cut(img)))]


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / np.iinfo(img.dtype).max).permute(2, 0, 1)


def _write_png_folder(
    folder: Path, frames: Iterator[OutFrame], rate: Fraction, audio_from: Path | None,
    audio_end: Callable[[], float | None],
) -> None:
    """Numbered PNGs (8-bit, or 16-bit for uint16 frames), frames.json (each frame's time) and audio.mka (the input's
    sound, when it has one) into `folder` (a staged temp folder, renamed onto the output when complete)."""
    times = []
    tb = None
    for n, (index, pts, tb, img) in enumerate(frames):
        if img.dtype == np.uint16:  # write_image writes 8 bits; OpenCV's PNG encoder keeps 16
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
            if not ok:
                raise ValueError(f"{folder / f'{n:06d}.png'}: OpenCV could not encode a 16-bit PNG")
            (folder / f"{n:06d}.png").write_bytes(buf.tobytes())  # the folder is staged
        else:
            write_image(folder / f"{n:06d}.png", img.astype(np.float32) / 255.0)
        times.append({"file": f"{n:06d}.png", "input_frame": index, "pts": pts, "time": float(pts * tb)})
    info = {"fps": str(rate), "time_base": str(tb) if times else None, "frames": times}
    (folder / "frames.json").write_bytes((json.dumps(info, indent=1) + "\n").encode())  # the folder is staged
    if audio_from is not None:
        copy_audio(audio_from, folder / "audio.mka", audio_end())
