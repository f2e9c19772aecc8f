"""Raise the frame rate of a video or frame folder with an `interp` model (what infer.py runs for them):

    python infer.py ckpt=PATH input=VIDEO_OR_FRAME_DIR output=DIR [interp.factor=4 | interp.fps=60]

Output frame times: `factor` k puts k - 1 new frames evenly between each pair of input frames (k N frames, the
last input frame held k times so the duration is unchanged); `fps` F samples the input's time span at 1/F
(each output time between input frames i and i+1 becomes the frame at t = its position in that interval).
Input timestamps are kept: with `factor` the output time base is the input's divided by k, so every input
frame keeps its exact presentation time, also in variable-frame-rate video. Across a detected scene cut nothing
is blended: the frame before the cut is repeated. A video comes out as `<stem>_x<k>.mp4` (or `_<F>fps.mp4`,
PyAV/FFmpeg, codec/crf/pix_fmt in the `interp:` block of conf/infer.yaml); a frame folder as numbered PNGs in
`<name>_x<k>/` and, with `interp.write_video=true`, also a video at `interp.input_fps` times k. Audio is not
copied. Outputs are written atomically and never over the input.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.atomic import Staged
from restoregan.data.io import to_tensor, write_image
from restoregan.data.video import (
    Frame, SceneCutDetector, VideoInfo, VideoReadError, VideoWriter, iter_frames, probe,
)
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.outputs import Inputs, prepare_outputs


def output_times(pts0: int, pts1: int, k: int) -> list[tuple[int, Fraction]]:
    """factor mode: the k output (pts in time_base / k, t) of the interval [pts0, pts1)."""
    return [(k * pts0 + j * (pts1 - pts0), Fraction(j, k)) for j in range(k)]


def fps_times(start: Fraction, end: Fraction, fps: Fraction, first: int) -> list[int]:
    """fps mode: indices m >= first of output frames at m / fps within [start, end) (seconds)."""
    m = max(first, int(np.ceil(start * fps)))
    out = []
    while Fraction(m) / fps < end:
        out.append(m)
        m += 1
    return out


class Interpolator:
    """Runs the model for all t of one frame pair in one batch; t = 0 returns frame0 itself."""

    def __init__(self, model: LoadedGenerator, device: torch.device, half: bool) -> None:
        self.net, self.device, self.half = model.net, device, half

    @torch.inference_mode()
    def __call__(self, frame0: np.ndarray, frame1: np.ndarray, ts: list[Fraction]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [frame0 if t == 0 else None for t in ts]
        todo = [i for i, t in enumerate(ts) if t != 0]
        if todo:
            f0 = to_tensor(frame0)[None].to(self.device).expand(len(todo), -1, -1, -1)
            f1 = to_tensor(frame1)[None].to(self.device).expand(len(todo), -1, -1, -1)
            t = torch.tensor([float(ts[i]) for i in todo], device=self.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
                frames = self.net(f0, f1, t).float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for i, frame in zip(todo, frames):
                out[i] = frame
        return out  # type: ignore[return-value]


def _timed_frames(source: Path, info: VideoInfo, input_fps: Fraction) -> Iterator[tuple[Frame, int, Fraction]]:
    """(frame, pts, time_base); folders (and video frames without pts) are timed index / fps."""
    if info.is_folder or not info.time_base:
        tb, fps = 1 / input_fps, input_fps
    else:
        tb, fps = info.time_base, info.fps or input_fps
    for frame in iter_frames(source):
        pts = frame.pts if frame.pts is not None and not info.is_folder else round(frame.index / fps / tb)
        yield frame, pts, tb


class Resampler:
    """Output frames of each input interval [p0, p1) (pts in time base tb), in order."""

    def __init__(self, interpolate: Interpolator, factor: int | None, fps: Fraction | None) -> None:
        self.interpolate, self.factor, self.fps = interpolate, factor, fps
        self.next_m = 0  # fps mode: index of the next output frame

    def interval(
        self, a: np.ndarray, b: np.ndarray, p0: int, p1: int, tb: Fraction, cut: bool
    ) -> Iterator[tuple[int, Fraction, np.ndarray]]:
        if self.factor:
            k = self.factor
            times = output_times(p0, p1, k)
            images = self.interpolate(a, b, [Fraction(0) if cut else t for _, t in times])
            for (pts, _), img in zip(times, images):
                yield pts, tb / k, img
            return
        ms = fps_times(p0 * tb, p1 * tb, self.fps, self.next_m)
        if not ms:
            return
        ts = [Fraction(0) if cut else (m / self.fps - p0 * tb) / ((p1 - p0) * tb) for m in ms]
        for m, img in zip(ms, self.interpolate(a, b, ts)):
            yield m, 1 / self.fps, img
        self.next_m = ms[-1] + 1


def plan(cfg: DictConfig) -> tuple[int | None, Fraction | None, str]:
    """(factor, target fps, output name suffix) from the interp block."""
    icfg = cfg.interp
    if icfg.fps is not None:
        fps = Fraction(str(icfg.fps)).limit_denominator(1001)
        if fps <= 0:
            raise ValueError(f"interp.fps={icfg.fps}: must be positive")
        return None, fps, f"_{float(fps):g}fps"
    k = int(icfg.factor)
    if k < 2 or k != icfg.factor:
        raise ValueError(f"interp.factor={icfg.factor}: must be an integer >= 2 (or set interp.fps)")
    return k, None, f"_x{k}"


def output_frames(
    source: Path, info: VideoInfo, input_fps: Fraction, resampler: Resampler, detector: SceneCutDetector
) -> Iterator[tuple[int, Fraction, np.ndarray]]:
    """(pts, time_base, frame) of every output frame, streaming: two input frames in memory at a time."""
    prev: tuple[Frame, int] | None = None
    step = None
    with tqdm(total=info.frames or None, desc=f"interpolating {source.name}", unit="frame") as bar:
        for frame, pts, tb in _timed_frames(source, info, input_fps):
            bar.update(1)
            if prev is not None:
                (f0, p0) = prev
                if pts <= p0:
                    raise VideoReadError(f"{source}: frame {frame.index} has timestamp {pts}, not after {p0}")
                yield from resampler.interval(f0.image, frame.image, p0, pts, tb, detector.is_cut(f0.image, frame.image))
                step = pts - p0
            prev = (frame, pts)
    if prev is None or step is None:
        raise VideoReadError(f"{source}: holds {'no frames' if prev is None else 'only 1 frame'}; "
                             "frame interpolation needs at least 2")
    # the last frame is shown for one more frame interval, as in the input: hold it (no frame after it)
    last, p_last = prev
    yield from resampler.interval(last.image, last.image, p_last, p_last + step, tb, cut=True)


def infer_interp(cfg: DictConfig, model: LoadedGenerator, device: torch.device) -> list[Path]:
    """Interpolate cfg.input into cfg.output (see module docstring); returns the written video and/or folder."""
    icfg = cfg.interp
    source, output = Path(cfg.input), Path(cfg.output)
    info = probe(source)
    input_fps = Fraction(str(icfg.input_fps)).limit_denominator(1001)
    k, fps, suffix = plan(cfg)
    write_video = (not info.is_folder) if icfg.write_video is None else bool(icfg.write_video)
    write_frames = info.is_folder if icfg.write_frames is None else bool(icfg.write_frames)
    if not (write_video or write_frames):
        raise ValueError("interp.write_video and interp.write_frames are both false: nothing to write")
    stem = source.name if info.is_folder else source.stem
    video_path, frames_dir = output / f"{stem}{suffix}.mp4", output / f"{stem}{suffix}"
    prepare_outputs(Inputs([source]).add_models([cfg.ckpt]), [video_path] if write_video else [],
                    folders=[frames_dir] if write_frames else [])
    half = device.type == "cuda" if cfg.half == "auto" else bool(cfg.half) and device.type == "cuda"
    resampler = Resampler(Interpolator(model, device, half), k, fps)
    detector = SceneCutDetector(icfg.scene_cut.hist_threshold, icfg.scene_cut.diff_threshold)
    src_fps = input_fps if info.is_folder or not info.fps else info.fps
    out_rate = src_fps * k if k else fps

    def run(video_tmp: str | None, frames_tmp: Path | None) -> None:
        writer = None
        if video_tmp:
            writer = VideoWriter(video_tmp, out_rate, icfg.codec, icfg.crf, icfg.pix_fmt, name=video_path,
                                 config="interp")
        try:
            for n, (pts, tb, img) in enumerate(output_frames(source, info, input_fps, resampler, detector)):
                if writer:
                    writer.write(img, pts, tb)
                if frames_tmp is not None:
                    write_image(frames_tmp / f"{n:06d}.png", img)
        finally:
            if writer:
                writer.close()

    # the video and the frame folder are written aside and appear together when complete; the folder replaces
    # an earlier one whole, so no frame of a longer earlier run stays behind
    with Staged() as staged:
        frames_tmp = staged.temp_dir(frames_dir) if write_frames else None
        if write_video:
            staged.write(video_path, lambda tmp: run(tmp, frames_tmp))
        else:
            run(None, frames_tmp)
    return ([video_path] if write_video else []) + ([frames_dir] if write_frames else [])
