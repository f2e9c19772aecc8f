"""The film stage of a temporal network (`net(clip)`: (b, T, 3, h, w) -> the same shape, any T >= 1): frames are
restored in chunks with their neighbours, never across a scene cut (restoregan.tasks.restore_video)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from restoregan.data.video import SceneCutDetector
from restoregan.tasks.base import Item, RunOptions
from restoregan.tasks.restore_video import apply_clip


class ClipStage:
    """Restores the frames handed in (one segment plus `overlap` frames of context each side) in chunks of `window`
    frames, each chunk run through the network together with up to `overlap` frames before and after it, of which
    only the chunk's own outputs are kept.

    Why the overlap: a recurrent network starts its state from nothing at a clip's ends, so the first and last
    frames of a pass see fewer neighbours; the extra frames warm the state up, and a chunk's edge frames are
    restored about as well as its middle ones (and a segment's edge frames, through the stage's `context`).

    Why runs: the frames are first split at detected scene cuts (`detector.is_cut(previous, frame)`) and each run
    is chunked on its own; no chunk and no overlap reaches across a cut, since state carried over it would paste
    the old shot into the new one. A run of one frame is restored as a clip of one frame.

    Chunks are counted from the start of each run among the frames handed in, never from absolute frame numbers,
    so a segment's output depends only on the frames of its window: a resumed pipeline recomputes it exactly.
    Frames stream through: at most `window + 2 * overlap` of them are held at a time."""

    scale = 1
    min_frames = 1

    def __init__(self, name: str, net: nn.Module, run: RunOptions, window: int, overlap: int,
                 detector: SceneCutDetector) -> None:
        if window < 1 or overlap < 0:
            raise ValueError(f"stage {name}: window {window} must be >= 1 and overlap {overlap} >= 0")
        self.name, self.net, self.run = name, net, run
        self.window, self.overlap, self.detector = window, overlap, detector
        self.context = (overlap, overlap)

    def rate(self, fps: Fraction) -> Fraction:
        return fps

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        window, overlap = self.window, self.overlap
        held: list[Item] = []  # the current run's frames from (next chunk's start - overlap) on
        start = 0  # position in `held` of the next chunk's first frame
        prev: Item | None = None
        for item in items:
            if prev is not None and self.detector.is_cut(prev.image, item.image):
                yield from self._finish(held, start)
                held, start = [], 0
            held.append(item)
            prev = item
            if len(held) >= start + window + overlap:  # the chunk and all its context after are here
                yield from self._chunk(held, start, start + window)
                start += window
                drop = max(0, start - overlap)  # frames no later chunk reaches back to
                del held[:drop]
                start -= drop
        yield from self._finish(held, start)

    def _finish(self, held: list[Item], start: int) -> Iterator[Item]:
        """The chunks left in a run that has ended (a cut, or the last frame handed in)."""
        while start < len(held):
            yield from self._chunk(held, start, min(start + self.window, len(held)))
            start += self.window

    def _chunk(self, held: list[Item], a: int, b: int) -> Iterator[Item]:
        """Frames held[a:b] restored, with up to `overlap` frames each side of them in the pass."""
        lo, hi = max(0, a - self.overlap), min(len(held), b + self.overlap)
        frames = [torch.from_numpy(np.ascontiguousarray(it.image, dtype=np.float32)).permute(2, 0, 1)
                  for it in held[lo:hi]]
        out = apply_clip(self.net, torch.stack(frames)[None], self.run)[0, a - lo:b - lo].clamp(0, 1)
        for it, img in zip(held[a:b], out):
            yield Item(it.index, it.pts, it.tb, img.permute(1, 2, 0).contiguous().numpy())
