"""Segments: the unit of work a killed run resumes from.

Input frames are cut into segments of `segment_frames` ([s, e), the last one shorter). A segment's output is
computed from its own frames plus a fixed context around them (`stage_windows`: each stage's `context`, e.g.
the colour stabiliser's warm-up before and the interpolator's next frame after), in every run alike, so a
segment is a deterministic function of the input: a resumed run writes exactly the frames an uninterrupted one
would have.

The work folder beside the output, `<output>.work/`, holds
    manifest.json          config hash (stages, checkpoints' sha256, options) and the input's fingerprint
    seg_000000.mkv         the segment's output frames, lossless (FFV1, RGB: 8-bit, or 16-bit for a deep input)
    seg_000000.json        written after the .mkv: input range, (input index, pts) per frame, time base, sha256
A segment counts as done only when its .json exists, names the expected range and the .mkv's sha256 matches;
anything else (a run killed mid-segment) is redone. Both files are written atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from restoregan.atomic import atomic_write, atomic_write_bytes
from restoregan.data.video import VideoWriter, iter_frames
from restoregan.pipeline.checkpoints import file_digest
from restoregan.tasks.base import Item, Stage

FORMAT_VERSION = 1


def stage_windows(stages: Sequence[Stage], s: int, e: int) -> list[tuple[int, int]]:
    """Input-frame range [a, b) each stage must be handed so the last one yields every frame of [s, e);
    element 0 is what to decode. Ranges reach past the film's end where a stage looks ahead; they are cut
    by what exists."""
    a, b = s, e
    needs = []
    for stage in reversed(stages):
        before, after = stage.context
        a, b = max(0, a - before), b + after
        needs.append((a, b))
    return needs[::-1]


def _within(items: Iterator[Item], a: int, b: int) -> Iterator[Item]:
    return (it for it in items if a <= it.index < b)


def run_chain(stages: Sequence[Stage], frames: Sequence[Item], s: int, e: int) -> Iterator[Item]:
    """The output items of input frames [s, e), from `frames` (which cover stage_windows(...)[0])."""
    needs = stage_windows(stages, s, e)
    stream: Iterator[Item] = iter(frames)
    for stage, (a, b) in zip(stages, needs):
        stream = stage(_within(stream, a, b))
    return _within(stream, s, e)


@dataclass
class Segment:
    number: int
    start: int  # input frames [start, end)
    end: int
    items: list[tuple[int, int]]  # (input index, pts) of each output frame
    time_base: Fraction
    size: tuple[int, int]  # (H, W)


class WorkDir:
    """`<output>.work/`: the manifest, a lock against two runs on one output, and the segments."""

    def __init__(self, path: Path, manifest: dict, resume: bool, deep: bool = False) -> None:
        self.path, self.deep = path, deep  # deep: frames kept at 16 bits (a 10-bit input), else 8
        self.manifest = {"format_version": FORMAT_VERSION, **manifest}
        manifest_file = path / "manifest.json"
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path}: exists and is not a folder; the pipeline keeps its segments there")
        path.mkdir(parents=True, exist_ok=True)
        self._lock = open(path / "lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"{path}: another run is writing this output right now") from None
        if manifest_file.is_file():
            old = json.loads(manifest_file.read_text())
            same = {k: old.get(k) for k in ("format_version", "config_hash", "input")} == {
                k: self.manifest[k] for k in ("format_version", "config_hash", "input")}
            if not resume:
                self.clear()
            elif not same:
                what = "input" if old.get("input") != self.manifest["input"] else "configuration or checkpoints"
                raise ValueError(f"{path}: holds segments of a run with another {what}; pass video.resume=false "
                                 "to discard them and start over")
        for stale in path.glob(".*.tmp"):  # temp files of a killed run (this run holds the lock)
            stale.unlink(missing_ok=True)
        atomic_write_bytes(manifest_file, (json.dumps(self.manifest, indent=2) + "\n").encode())

    def _files(self, n: int) -> tuple[Path, Path]:
        return self.path / f"seg_{n:06d}.mkv", self.path / f"seg_{n:06d}.json"

    def done(self, n: int, start: int, end: int) -> Segment | None:
        """The segment when it was completed earlier (range as expected, frames intact), else None."""
        video, record = self._files(n)
        if not (video.is_file() and record.is_file()):
            return None
        try:
            meta = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if meta.get("frames") != [start, end] or meta.get("sha256") != file_digest(video):
            return None
        return Segment(n, start, end, [tuple(x) for x in meta["items"]], Fraction(meta["time_base"]),
                       tuple(meta["size"]))

    def write(self, n: int, start: int, end: int, items: Iterator[Item]) -> Segment:
        """Encode the items losslessly, then record them; returns the finished segment."""
        video, record = self._files(n)
        record.unlink(missing_ok=True)  # an old record must never vouch for new frames
        index: list[tuple[int, int]] = []
        tb, size = None, None

        def encode(tmp: str) -> None:
            nonlocal tb, size
            writer = VideoWriter(tmp, Fraction(25), "ffv1", None, "gbrp16le" if self.deep else "bgr0", "matroska")
            try:
                for it in items:
                    writer.write(it.image)  # pts only number the frames; the real ones are in the record
                    index.append((it.index, it.pts))
                    tb, size = it.tb, it.image.shape[:2]
            finally:
                writer.close()

        atomic_write(video, encode)
        if not index:
            raise ValueError(f"{video}: segment {n} (input frames {start}-{end - 1}) produced no frames")
        meta = {"segment": n, "frames": [start, end], "items": index, "time_base": str(tb), "size": list(size),
                "sha256": file_digest(video)}
        atomic_write_bytes(record, (json.dumps(meta) + "\n").encode())
        return Segment(n, start, end, index, tb, size)

    def frames(self, segment: Segment) -> Iterator[tuple[int, int, np.ndarray]]:
        """(input index, pts, (H, W, 3) uint8, or uint16 when deep) of a segment's frames, in order."""
        video, _ = self._files(segment.number)
        decoded = iter_frames(video)
        top, dtype = (65535, np.uint16) if self.deep else (255, np.uint8)
        for (index, pts), frame in zip(segment.items, decoded, strict=True):
            yield index, pts, np.round(frame.image * top).astype(dtype)

    def clear(self) -> None:
        """Remove the segments and the manifest (files this module writes, nothing else)."""
        for pattern in ("seg_*.mkv", "seg_*.json", "manifest.json", ".*.tmp"):
            for file in self.path.glob(pattern):
                file.unlink()

    def close(self, remove: bool) -> None:
        """Release the lock; with `remove`, also delete the work folder (when it holds only our files)."""
        if remove:
            self.clear()
            (self.path / "lock").unlink(missing_ok=True)
        self._lock.close()
        if remove:
            try:
                os.rmdir(self.path)
            except OSError:
                pass  # someone put other files there: leave them
