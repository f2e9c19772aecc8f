"""Pipeline stages: trained models behind one interface, a stream of frames in and a stream of frames out.

    class Stage(Protocol):
        name: str                          # restore | colorize | upscale | interpolate
        scale: int                         # output side / input side
        context: tuple[int, int]           # input frames needed before / after a frame to produce its output
        def rate(self, fps: Fraction) -> Fraction             # output frame rate for an input rate
        def __call__(self, items: Iterator[Item]) -> Iterator[Item]

A call is one pass over consecutive frames (a segment plus its context, see restoregan.pipeline.segments): all
state lives inside the call, so the output for a frame depends only on the frames handed in, and a resumed run
recomputes exactly what an uninterrupted one did. `Item.index` is the input frame an item comes from; the
interpolation stage turns each item into several with new timestamps, all keeping that index, so the stages
after it and the segment bookkeeping still count in input frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from typing import Protocol

import numpy as np
import torch

from restoregan.data.io import to_numpy, to_tensor
from restoregan.data.video import SceneCutDetector
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.inference.colorize import Colorizer
from restoregan.inference.interp import Interpolator, Resampler
from restoregan.inference.temporal import ChromaStabilizer, Motion
from restoregan.inference.tiled import upscale


@dataclass
class Item:
    index: int  # input frame it comes from
    pts: int  # presentation time in `tb`
    tb: Fraction
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]


class Stage(Protocol):
    name: str
    scale: int
    context: tuple[int, int]

    def rate(self, fps: Fraction) -> Fraction: ...

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]: ...


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while batch := list(islice(items, size)):
        yield batch


class ImageStage:
    """An image-to-image generator applied frame by frame, `batch` frames per call, tiled when large
    (restoregan.inference.tiled: the result equals untiled inference). Restore is scale 1, upscale scale s."""

    context = (0, 0)

    def __init__(
        self, name: str, model: LoadedGenerator, device: torch.device, half: bool, tile: int | None, overlap: int,
        batch: int,
    ) -> None:
        self.name, self.model, self.scale = name, model, model.scale
        self.device, self.half, self.tile, self.overlap, self.batch = device, half, tile, overlap, batch

    def rate(self, fps: Fraction) -> Fraction:
        return fps

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        for batch in _batches(items, self.batch):
            x = torch.stack([to_tensor(it.image) for it in batch])  # (b, 3, h, w)
            y = upscale(self.model.net, x, self.scale, self.tile, self.overlap, self.device, self.half).clamp(0, 1)
            for it, img in zip(batch, y.cpu()):
                yield Item(it.index, it.pts, it.tb, to_numpy(img))


class ColorizeStage:
    """Chroma from the colorization model on each frame's luminance, stabilised over time along optical flow
    (restoregan.inference.temporal). The stabiliser is a recursive filter: it starts afresh at the first frame
    handed in, so each segment gets `warmup` frames before it as context, whose output is dropped."""

    scale = 1

    def __init__(
        self, model: LoadedGenerator, device: torch.device, render_size: int | None, stabilize: bool,
        strength: float, scene_cut: float, warmup: int, batch: int,
    ) -> None:
        self.name = "colorize"
        self.colorizer = Colorizer(model, device, render_size)
        self.stabilize, self.strength, self.scene_cut, self.batch = stabilize, strength, scene_cut, batch
        self.context = (warmup if stabilize else 0, 0)
        ChromaStabilizer(strength)  # checks the strength now, not at the first segment

    def rate(self, fps: Fraction) -> Fraction:
        return fps

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        stabilizer = ChromaStabilizer(self.strength) if self.stabilize else None
        prev_lum = None
        for batch in _batches(items, self.batch):
            lums = torch.cat([self.colorizer.luminance(it.image) for it in batch])  # (b, 1, H, W)
            chromas = self.colorizer.chroma(lums).cpu().numpy()  # (b, 2, H, W), one forward pass per batch
            for it, lum, raw in zip(batch, lums, chromas):
                lum_np = lum[0].cpu().numpy()
                stable = raw
                if stabilizer is not None:
                    motion = Motion(prev_lum, lum_np, self.scene_cut) if prev_lum is not None else None
                    stable = stabilizer(raw, motion)
                prev_lum = lum_np
                rgb = self.colorizer.rgb(lum[None], torch.from_numpy(stable)[None].to(lum.device))
                yield Item(it.index, it.pts, it.tb, rgb)


class InterpolateStage:
    """k - 1 new frames between each pair (`factor`), or the time span resampled at `fps`, as in
    restoregan.inference.interp: input frames keep their timestamps, nothing is blended across a detected scene
    cut (the frame before it is held), and the last frame of the film is held for one more frame interval so the
    duration is unchanged. A frame's interval needs the next frame (context after) and, for the last frame's
    hold, the interval before it (context before)."""

    scale = 1
    context = (1, 1)

    def __init__(
        self, model: LoadedGenerator, device: torch.device, half: bool, factor: int | None, fps: Fraction | None,
        detector: SceneCutDetector,
    ) -> None:
        self.name = "interpolate"
        self.interpolator = Interpolator(model, device, half)
        self.factor, self.fps, self.detector = factor, fps, detector

    def rate(self, fps: Fraction) -> Fraction:
        return fps * self.factor if self.factor else self.fps

    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        resampler = Resampler(self.interpolator, self.factor, self.fps)  # stateless per interval: fresh per pass
        prev: Item | None = None
        step = None
        for item in items:
            if prev is not None:
                if item.pts <= prev.pts:
                    raise ValueError(f"frame {item.index} has timestamp {item.pts}, not after {prev.pts}")
                cut = self.detector.is_cut(prev.image, item.image)
                for pts, tb, img in resampler.interval(prev.image, item.image, prev.pts, item.pts, item.tb, cut):
                    yield Item(prev.index, pts, tb, img)
                step = item.pts - prev.pts
            prev = item
        if prev is None:
            return
        if step is None:
            raise ValueError("frame interpolation needs at least 2 frames")
        # the last frame handed in: held for one frame interval (kept only when it is the film's last frame)
        for pts, tb, img in resampler.interval(prev.image, prev.image, prev.pts, prev.pts + step, prev.tb, True):
            yield Item(prev.index, pts, tb, img)
