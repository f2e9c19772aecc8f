"""Frame interpolation: (frame0, frame1, t) -> the frame at time t between them.

Training batches come from `restoregan.data.triplet_dataset`: `frame0`, `frame1`, `gt` (b, 3, h, w) and `t` (b,).
Metrics follow the interpolation literature (Vimeo-90K / UCF101 tables): PSNR on RGB and SSIM (Wang et al.'s
reference SSIM on BT.601 luma, the value of `restoregan.metrics.image.ssim_y`), both on 8-bit quantised frames,
no border crop. Baselines: repeating frame0 and linear blending, the "bicubic" of time.

evaluate.py (`input=VIDEO_OR_FRAME_DIR`): for every triplet (i, i + step, i + 2 step) of the input, after dropping
pulldown duplicates when asked, the middle frame is predicted at t = 0.5 from the outer two; triplets spanning a
scene cut are skipped.

infer.py and the film pipeline (a video, or a folder, which is always a frame sequence here): `factor` k puts
k - 1 new frames evenly between each pair of input frames (the last input frame held k times so the duration is
unchanged); `fps` F samples the input's time span at 1/F (each output time between input frames i and i + 1
becomes the frame at t = its position in that interval). Input timestamps are kept: with `factor` the output time
base is the input's divided by k, so every input frame keeps its exact presentation time, also in variable-frame-
rate video. Across a detected scene cut nothing is blended: the frame before the cut is repeated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from restoregan.data.io import quantize, to_tensor
from restoregan.data.video import SceneCutDetector, VideoReadError, duplicate_frames, read_frames, windows_without_cuts
from restoregan.gans.checkpoint import CheckpointError
from restoregan.gans.community import RIFE_PURPOSE
from restoregan.gans.interp_net import InterpolationNet
from restoregan.gans.rife import RifeInterpolator
from restoregan.metrics.image import psnr_rgb, rgb_to_y
from restoregan.tasks.base import EvalData, Item, RunOptions, Stage, task_config
from restoregan.tasks.image import min_side

EVAL_T = 0.5  # evaluate.py predicts the middle frame of each triplet


class InterpolationTask:
    """Options (all application settings; an export stores none of them):

    factor               infer: frames per input frame interval (2 = x2), used when `fps` is None
    fps                  infer: target frame rate instead (60, 59.94, "30000/1001"), timestamps resampled
    scene_cut            infer and evaluate: {hist_threshold, diff_threshold} of `SceneCutDetector`
    step                 evaluate: triplets (i, i + step, i + 2 step); 2 = every other frame, larger motion
    drop_duplicates      evaluate: drop pulldown repeats first (24 fps film in 29.97 fps video repeats every 4th)
    duplicate_threshold  evaluate: mean absolute difference below which a frame repeats the previous one
    max_triplets         evaluate: an evenly spread subset of this many triplets; None = all
    """

    name = "interp"
    scale = 1
    metric_columns: ClassVar[list[tuple[str, str, int]]] = [
        ("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (luma)", 4), ("lpips", "LPIPS", 4)]
    evaluate_hint = "input=VIDEO_OR_FRAME_DIR"
    grid_crop = 96
    pipeline_first: ClassVar[bool] = False

    def __init__(
        self,
        factor: int = 2,
        fps: float | str | None = None,
        scene_cut: Mapping[str, float] | None = None,
        step: int = 1,
        drop_duplicates: bool = False,
        duplicate_threshold: float = 0.004,
        max_triplets: int | None = None,
    ) -> None:
        self.fps = _frame_rate(fps)
        self.factor = None if self.fps is not None else _factor(factor)
        self.output_suffix = f"_{float(self.fps):g}fps" if self.fps is not None else f"_x{self.factor}"
        self.detector = scene_cut_detector(scene_cut)
        self.step = _whole(step, "task.step", 1, "(1 = adjacent frames)")
        if not isinstance(drop_duplicates, bool):
            raise ValueError(f"task.drop_duplicates={drop_duplicates}: must be true or false")
        self.drop_duplicates = drop_duplicates
        self.duplicate_threshold = _number(duplicate_threshold, "task.duplicate_threshold")
        self.max_triplets = None if max_triplets is None else _whole(max_triplets, "task.max_triplets", 1, "(or null)")

    def config(self) -> dict:
        return task_config(self)  # the network fixes nothing the options could contradict

    @classmethod
    def from_legacy(cls, word: str, meta: Mapping[str, Any]) -> dict | None:
        return task_config(cls.__new__(cls)) if word == "interp" else None

    @classmethod
    def adopt(cls, purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
        """Community frame interpolators (a RIFE v4 flownet.pkl, restoregan.gans.community): any t, any size."""
        if purpose == RIFE_PURPOSE and scale == 1:
            return task_config(cls.__new__(cls))
        return None

    def check_network(self, path: Any, net: nn.Module, arch: dict | None) -> None:
        """Only a network taking (frame0, frame1, t) serves: an InterpolationNet, or a RIFE v4 loaded from its
        users' flownet.pkl."""
        # an ONNX export of one says so (restoregan.gans.onnx_model.OnnxGenerator.frame_interpolator)
        onnx_interpolator = getattr(net, "frame_interpolator", False) is True
        if getattr(net, "frame_interpolator", None) is False:  # an OnnxGenerator of one image input
            raise CheckpointError(f"{path}: an ONNX model with {len(getattr(net, 'names', []))} input(s); task "
                                  f"{self.name} needs frame0, frame1, t")
        if not isinstance(net, (InterpolationNet, RifeInterpolator)) and not onnx_interpolator:
            what = (arch or {}).get("_target_") or type(net).__name__
            raise CheckpointError(f"{path}: generator {what} is not a frame-interpolation network; task {self.name} "
                                  "needs a restoregan.gans.interp_net.InterpolationNet or a RIFE flownet.pkl")

    # --- training and validation ---
    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return net(batch["frame0"], batch["frame1"], batch["t"])  # (b, 3, h, w)

    def target(self, batch: dict) -> Tensor:
        return batch["gt"]

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        """Triplets stacked on channels (temporal PatchGAN): the D judges the middle frame with its neighbours."""
        f0, f1 = batch["frame0"], batch["frame1"]
        return torch.cat([f0, batch["gt"], f1], 1), torch.cat([f0, output, f1], 1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        return {"repeat": batch["frame0"], "blend": blend(batch["frame0"], batch["frame1"], batch["t"])}

    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]:
        """(b,) PSNR on RGB and SSIM on luma of 8-bit quantised frames."""
        out, tgt = quantize(output), quantize(self.target(batch))
        return {"psnr": psnr_rgb(out, tgt).cpu(), "ssim": ssim_luma(out, tgt)}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [
            ("frame0", batch["frame0"]),
            ("blend", self.baselines(batch)["blend"]),
            ("interpolated", output.clamp(0, 1)),
            ("ground truth", batch["gt"]),
            ("frame1", batch["frame1"]),
        ]

    # --- evaluate.py ---
    def eval_data(self, cfg: DictConfig) -> EvalData:
        """Triplets of cfg.input (see module docstring); frames are read up front to find cuts and duplicates."""
        if cfg.get("input") is None:
            raise ValueError("input=... is required for frame interpolation (python evaluate.py ckpt=... "
                             "input=VIDEO_OR_FRAME_DIR out_dir=...)")
        source, step = Path(cfg.input), self.step
        frames = read_frames(source, min_frames=2 * step + 1)
        least, why = min_side(11, "SSIM's 11x11 Gaussian window", cfg)
        h, w = frames[0].image.shape[:2]
        if min(h, w) < least:
            raise VideoReadError(f"{source}: {w}x{h} frames are too small to score: {why} needs at least "
                                 f"{least}x{least}")
        dropped = []
        if self.drop_duplicates:
            dropped = duplicate_frames([f.image for f in frames], self.duplicate_threshold)
            drop = set(dropped)
            frames = [f for i, f in enumerate(frames) if i not in drop]
        cuts = self.detector.cuts([f.image for f in frames])
        starts = windows_without_cuts(len(frames), 2 * step, cuts)
        skipped = len(frames) - 2 * step - len(starts)
        if self.max_triplets is not None and starts:  # evenly spread over the clip, not its first seconds
            keep = np.unique(np.linspace(0, len(starts) - 1, self.max_triplets).round().astype(int))
            starts = [starts[k] for k in keep]
        if not starts:
            raise ValueError(f"{source}: no triplet of frames (step {step}) without a scene cut to evaluate")

        def items() -> Iterator[dict]:
            for i in starts:
                f0, gt, f1 = (frames[j] for j in (i, i + step, i + 2 * step))
                yield {"frame0": to_tensor(f0.image)[None], "frame1": to_tensor(f1.image)[None],
                       "gt": to_tensor(gt.image)[None], "t": torch.tensor([EVAL_T]), "name": gt.name,
                       "info": {"from": [f0.name, f1.name]}}

        header = {
            "dataset": cfg.get("dataset") or source.stem,
            "input": str(source),
            "task": self.name,
            "frames": len(frames),
            "duplicates_dropped": len(dropped),
            "step": step,
            "t": EVAL_T,
            "triplets": len(starts),
            "triplets_skipped_scene_cut": skipped,
            "scene_cuts_before": [frames[c].name for c in cuts],
        }
        return EvalData(items(), header, _title, [source], count=len(starts))

    def run_batch(self, model: Any, batch: dict, run: RunOptions) -> Tensor:
        f0, f1 = batch["frame0"].to(run.device), batch["frame1"].to(run.device)
        t = batch["t"].to(run.device, torch.float32)
        with torch.inference_mode(), autocast(run):
            return model.net(f0, f1, t).float().cpu()

    # --- infer.py and the film pipeline ---
    def apply_batch(self, model: Any, x: Tensor, run: RunOptions) -> Tensor:
        raise ValueError("frame interpolation needs a video or a folder of frames, not single images: give input= "
                         "a video file or a folder holding the frames in order")

    def stage(self, name: str, model: Any, run: RunOptions) -> Stage:
        return InterpolateStage(name, model, run, self.factor, self.fps, self.detector)

    def sequence(self, files: list) -> bool:
        return True  # a folder of frames is footage to interpolate, never a set of separate images


# --- option checks: one line naming the key --------------------------------------------------------------
def _frame_rate(fps: Any) -> Fraction | None:
    if fps is None:
        return None
    try:
        rate = None if isinstance(fps, bool) else Fraction(str(fps)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        rate = None
    if rate is None or rate <= 0:
        raise ValueError(f"task.fps={fps}: must be a positive frame rate (60, 59.94, 30000/1001), or null")
    return rate


def _factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not float(factor).is_integer() \
            or factor < 2:
        raise ValueError(f"task.factor={factor}: must be an integer >= 2 (or set task.fps)")
    return int(factor)


def _whole(value: Any, key: str, least: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{key}={value}: must be a whole number >= {least} {hint}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{key}={value}: must be a number >= 0")
    return float(value)


def scene_cut_detector(scene_cut: Mapping[str, float] | None) -> SceneCutDetector:
    keys = ("hist_threshold", "diff_threshold")
    if scene_cut is None:
        return SceneCutDetector()
    if not isinstance(scene_cut, Mapping):
        raise ValueError(f"task.scene_cut={scene_cut}: must be {{hist_threshold: ..., diff_threshold: ...}}")
    unknown = [k for k in scene_cut if k not in keys]
    if unknown:
        raise ValueError(f"task.scene_cut.{unknown[0]}: unknown key (known: {', '.join(keys)})")
    return SceneCutDetector(**{k: _number(v, f"task.scene_cut.{k}") for k, v in scene_cut.items()})


def _title(header: dict, n: int) -> str:
    dup = f", {header['duplicates_dropped']} duplicate frames dropped" if header["duplicates_dropped"] else ""
    return (f"{header['dataset']}: {n} triplets (step {header['step']}, t = {header['t']}; "
            f"{header['triplets_skipped_scene_cut']} across scene cuts skipped{dup})")


# --- metrics and baselines -----------------------------------------------------------------------------
def ssim_luma(pred: Tensor, target: Tensor) -> Tensor:
    """(b,) reference SSIM (11x11 Gaussian, sigma 1.5, 'valid' mean) of BT.601 luma on 0-255.

    scikit-image's separable filtering gives `ssim_y(pred, target, 0)`'s value (equal to ~1e-12) about 70x
    faster on video frames, which matters when every triplet of a clip is scored."""
    scores = []
    for p, t in zip(pred.detach().cpu(), target.detach().cpu()):
        yp, yt = rgb_to_y(p.permute(1, 2, 0).numpy()), rgb_to_y(t.permute(1, 2, 0).numpy())
        scores.append(structural_similarity(yp, yt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            data_range=255.0))
    return torch.tensor(np.array(scores, dtype=np.float64))


def blend(frame0: Tensor, frame1: Tensor, t: Tensor) -> Tensor:
    """(1 - t) frame0 + t frame1, t (b,)."""
    t = t.view(-1, 1, 1, 1).to(frame0)
    return (1 - t) * frame0 + t * frame1


def autocast(run: RunOptions) -> torch.autocast:
    """fp16 autocast when asked for, on CUDA only."""
    return torch.autocast("cuda", dtype=torch.float16, enabled=bool(run.half) and run.device.type == "cuda")


# --- frame streams -------------------------------------------------------------------------------------
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

    def __init__(self, net: nn.Module, run: RunOptions) -> None:
        self.net, self.run = net, run

    @torch.inference_mode()
    def __call__(self, frame0: np.ndarray, frame1: np.ndarray, ts: list[Fraction]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [frame0 if t == 0 else None for t in ts]
        todo = [i for i, t in enumerate(ts) if t != 0]
        if todo:
            device = self.run.device
            f0 = to_tensor(frame0)[None].to(device).expand(len(todo), -1, -1, -1)
            f1 = to_tensor(frame1)[None].to(device).expand(len(todo), -1, -1, -1)
            t = torch.tensor([float(ts[i]) for i in todo], device=device)
            with autocast(self.run):
                frames = self.net(f0, f1, t).float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for i, frame in zip(todo, frames):
                out[i] = frame
        return out  # type: ignore[return-value]


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


class InterpolateStage:
    """k - 1 new frames between each pair (`factor`), or the time span resampled at `fps`: input frames keep their
    timestamps, nothing is blended across a detected scene cut (the frame before it is held), and the last frame
    handed in is held for one more frame interval so the film's duration is unchanged. A frame's interval needs
    the next frame (context after) and, for the last frame's hold, the interval before it (context before). Each
    item made keeps the index of the input frame whose interval it lies in."""

    scale = 1
    context = (1, 1)
    min_frames = 2  # a film of one frame has no interval to fill

    def __init__(
        self, name: str, model: Any, run: RunOptions, factor: int | None, fps: Fraction | None,
        detector: SceneCutDetector,
    ) -> None:
        self.name = name
        self.interpolator = Interpolator(model.net, run)
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
