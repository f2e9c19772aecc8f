"""Colorization: grey `lq` (b, 3, h, w), R = G = B -> colour RGB with the input's luminance.

The generator sees the luminance and predicts chroma (`restoregan.data.color`, YUV or Lab, scaled to order 1);
the output is that chroma on the input's luminance, so the luminance of every output is the input's (exactly in
YUV). The training target is the original's chroma on the input's luminance: with damaged inputs (fading,
grain, ...) the losses and the discriminator then judge colour alone, not a luminance the generator may not
change. Chroma is rendered at `render_size` (shorter side, DeOldify's render factor x 16) and upsampled onto the
full-resolution luminance. Metrics: RGB PSNR/SSIM, mean CIEDE2000 delta E, Hasler-Suesstrunk colourfulness (also
as a ratio to the reference's) and FID over the set. On video, chroma is stabilised over time along optical flow
(`restoregan.inference.temporal`); flicker is measured by `evaluate.py input=ORIGINAL result=COLOURED`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from restoregan.data.color import check_space, chroma, compose, luminance
from restoregan.data.colorize_dataset import to_grey
from restoregan.data.datasets import holdout_split, image_size, skimage_photos
from restoregan.data.io import list_images, quantize, read_image, to_tensor
from restoregan.gans.checkpoint import CheckpointError
from restoregan.gans.community import COLORIZATION_PURPOSE
from restoregan.inference.temporal import ChromaStabilizer, Motion
from restoregan.metrics.color import FID, colorfulness, delta_e
from restoregan.metrics.image import psnr_rgb, ssim_rgb
from restoregan.tasks.base import EvalData, Item, RunOptions, Stage, batches, task_config
from restoregan.tasks.image import refuse_small


class ColorizationTask:
    name = "colorize"
    scale = 1
    metric_columns: ClassVar[list[tuple[str, str, int]]] = [
        ("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (RGB)", 4), ("delta_e", "CIEDE2000 ΔE", 2),
        ("colorfulness", "colourfulness", 1), ("fid", "FID", 1)]
    output_suffix = "_color"
    evaluate_hint = "hr_dir=skimage:val"
    grid_crop = 192
    pipeline_first: ClassVar[bool] = False

    # a chroma render size other than the trained one is a choice at inference (DeOldify's render factor)
    overridable: ClassVar[tuple[str, ...]] = ("render_size",)

    def __init__(
        self,
        color_space: str | None = "yuv",
        render_size: int | None = None,
        *,
        sequence: str | bool = "auto",
        stabilize: bool = True,
        stabilize_strength: float = 0.7,
        scene_cut: float = 0.1,
        warmup: int = 8,
        fid: bool = True,
        holdout_every: int | None = None,
    ) -> None:
        """color_space, render_size: what the model was trained for (stored in exports; render_size is also an
        evaluate/infer option). The rest are application options, see conf/task/colorize.yaml. color_space None
        is "yuv": conf/task/colorize.yaml leaves it null so that, laid over a model file's task as options
        (`task=colorize task.fid=false`), it keeps the file's colour space instead of replacing it."""
        self.space = check_space("yuv" if color_space is None else color_space)
        if render_size is not None and (isinstance(render_size, bool) or not isinstance(render_size, int)
                                        or render_size < 1):
            raise ValueError(f"render_size={render_size!r}: must be a positive whole number of pixels (or null)")
        self.render_size = render_size
        if sequence != "auto" and not isinstance(sequence, bool):
            raise ValueError(f"sequence={sequence!r}: must be auto, true or false")
        self.sequence_mode = sequence
        ChromaStabilizer(stabilize_strength)  # checks the strength now, not at the first frame
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup={warmup!r}: must be a whole number of frames >= 0")
        self.stabilize, self.stabilize_strength = bool(stabilize), float(stabilize_strength)
        self.scene_cut, self.warmup = float(scene_cut), warmup
        if holdout_every is not None and (isinstance(holdout_every, bool) or not isinstance(holdout_every, int)
                                          or holdout_every < 2):
            raise ValueError(f"holdout_every={holdout_every!r}: must be a whole number >= 2 (or null)")
        self.fid, self.holdout_every = bool(fid), holdout_every

    def config(self) -> dict:
        return task_config(self, color_space=self.space, render_size=self.render_size)

    @classmethod
    def from_legacy(cls, word: str, meta: Mapping[str, Any]) -> dict | None:
        """Format-1 exports: `task: colorize` with `color_space` and `render_size` beside it."""
        if word != "colorize":
            return None
        return task_config(cls.__new__(cls), color_space=meta.get("color_space", "yuv"),
                           render_size=meta.get("render_size"))

    @classmethod
    def adopt(cls, purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
        """Community colorizers (DDColor through spandrel-extra-arches, restoregan.gans.community): luminance in,
        YUV chroma out, composed with the input's own luminance as ours are."""
        if purpose == COLORIZATION_PURPOSE and scale == 1 and channels == (1, 2):
            return task_config(cls.__new__(cls), color_space="yuv", render_size=None)
        return None

    def check_network(self, path: Any, net: nn.Module, arch: dict | None) -> None:
        """A colorizer reads luminance (1 channel) and writes chroma (2 channels), as ColorizeUNet does."""
        params = inspect.signature(type(net)).parameters
        declared = lambda key: (arch or {}).get(key, params[key].default if key in params else None)  # noqa: E731
        out_ch, in_ch = declared("num_out_ch"), declared("num_in_ch")
        if out_ch != 2 or in_ch not in (None, 1):
            what = (arch or {}).get("_target_", type(net).__name__)
            raise CheckpointError(f"{path}: its generator {what} (in: {in_ch or 'n/a'}, out: {out_ch or 'n/a'} "
                                  "channels) is no colorizer: task colorize needs luminance in, 2 chroma channels out")

    # --- training ---
    def luminance(self, batch: dict) -> Tensor:
        return luminance(batch["lq"], self.space)  # (b, 1, h, w)

    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return colorize(net, self.luminance(batch), self.space)

    def target(self, batch: dict) -> Tensor:
        """The original's chroma on the input's luminance; in evaluate.py's batches the photo itself (`original`):
        reports compare with the photo, as the published figures did (its luminance differs from the greyed
        input's by the grey's 8-bit rounding), and FID's real set and the comparison crops are the photos."""
        if "original" in batch:
            return batch["original"]
        return compose(self.luminance(batch), chroma(batch["gt"], self.space), self.space)

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        """Conditional: (grey input, colour image) pairs, (b, 4, h, w)."""
        cond = self.luminance(batch)
        return torch.cat([cond, self.target(batch)], dim=1), torch.cat([cond, output], dim=1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        """The grey input itself: what 'no colour' scores."""
        lum = self.luminance(batch)
        return {"grey": compose(lum, torch.zeros_like(torch.cat([lum, lum], dim=1)), self.space)}

    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]:
        """Per item, on 8-bit quantised images: RGB PSNR/SSIM, CIEDE2000 delta E, colourfulness and its ratio to
        the target's. Validation scores against the original's chroma on the (possibly damaged) input's
        luminance, so a luminance the model may not change is not counted against it; evaluate.py against the
        photo itself (see `target`)."""
        out, ref = quantize(output), quantize(self.target(batch))
        rows: dict[str, list[float]] = {"delta_e": [], "colorfulness": [], "colorfulness_ratio": []}
        for o, r in zip(out, ref):
            o_np, r_np = o.permute(1, 2, 0).double().cpu().numpy(), r.permute(1, 2, 0).double().cpu().numpy()
            colour = colorfulness(o_np)
            rows["delta_e"].append(delta_e(o_np, r_np))
            rows["colorfulness"].append(colour)
            rows["colorfulness_ratio"].append(colour / max(colorfulness(r_np), 1e-6))
        scores = {"psnr": psnr_rgb(out, ref).cpu(), "ssim": ssim_rgb(out, ref)}
        return {**scores, **{k: torch.tensor(v, dtype=torch.float64) for k, v in rows.items()}}

    def set_metrics(self, device: torch.device) -> tuple[dict[str, FID | None], str | None]:
        """Metrics over a whole set, fed per item by the evaluation loop: FID (None plus the reason when
        torchmetrics' Inception weights cannot be had, or `fid=false`)."""
        if not self.fid:
            return {"fid": None}, "disabled (task.fid=false)"
        metric, note = FID.create(device)
        return {"fid": metric}, note

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [("grey", self.baselines(batch)["grey"]), ("colourised", output.clamp(0, 1)),
                ("original", batch["gt"])]

    # --- evaluation ---
    def eval_data(self, cfg: DictConfig) -> EvalData:
        """The colour photos of `hr_dir` (a folder, or skimage:val / skimage:train / skimage:all; with
        `holdout_every` N only the folder's photos a run trained with data.train.holdout_every=N never saw),
        greyed to 8-bit BT.601 luma as `lq`; `gt` and `original` are the photo. Grey photos are skipped (every
        method would score perfectly on their chroma) and listed in the header."""
        if cfg.get("hr_dir") is None:
            raise ValueError("hr_dir=... is required for colorization: a folder of colour photos or skimage:val "
                             "(python evaluate.py ckpt=... hr_dir=PHOTOS out_dir=...)")
        source = str(cfg.hr_dir)
        if not source.startswith("skimage") and not Path(source).is_dir():
            raise ValueError(f"{source}: folder of colour photos not found")
        paths = colour_photos(source, self.holdout_every)
        refuse_small(paths, 11, "SSIM's 11x11 Gaussian window")
        header: dict = {"dataset": cfg.get("dataset") or Path(source).name, "hr_dir": source, "task": self.name,
                        "colorfulness_original": None, "skipped_grey_images": []}
        originals: list[float] = []

        def items() -> Iterator[dict]:
            for path in paths:
                original = read_image(path)
                if is_grey(original):
                    header["skipped_grey_images"].append(path.name)
                    continue
                originals.append(colorfulness(original))
                header["colorfulness_original"] = float(np.mean(originals))
                grey = quantize(to_grey(original))  # what a scanned black-and-white print of it holds
                photo = to_tensor(original)[None]
                yield {"lq": to_tensor(grey)[None], "gt": photo, "original": photo, "name": path.name}
            if not originals:
                raise ValueError(f"{source}: only grey images; colorization is scored on colour photos")

        def title(h: dict, n: int) -> str:
            return f"{h['dataset']}: colorization ({n} photos)"

        def notes(h: dict) -> list[str]:
            lines = [f"Colourfulness of the originals: {h['colorfulness_original']:.1f}"]
            if h["skipped_grey_images"]:
                lines.append(f"Grey photos skipped: {', '.join(h['skipped_grey_images'])}")
            return lines

        sources = [] if source.startswith("skimage") else [Path(source)]
        return EvalData(items(), header, title, sources, notes, count=len(paths))

    def run_batch(self, model: Any, batch: dict, run: RunOptions) -> Tensor:
        return self.apply_batch(model, batch["lq"], run)

    # --- application ---
    def model_settings(self, model: Any) -> tuple[str, int | None]:
        """(colour space, render size) to run `model` with: its own task's, which holds the file's values with
        evaluate/infer options laid over them (restoregan.models.load_model); this task's for a model without."""
        own = model.task if isinstance(getattr(model, "task", None), ColorizationTask) else self
        return own.space, own.render_size

    @torch.no_grad()
    def apply_batch(self, model: Any, x: Tensor, run: RunOptions) -> Tensor:
        """RGB (b, 3, h, w) (colour inputs too: only their luminance is used) -> colour RGB with that luminance,
        8-bit quantised. Never tiled: chroma is rendered whole at the render size."""
        space, render_size = self.model_settings(model)
        lum = luminance(x.to(run.device), space)
        return quantize(compose(lum, predict_chroma(model.net, lum, render_size), space))

    def stage(self, name: str, model: Any, run: RunOptions) -> Stage:
        return ColorizeStage(name, self, model, run)

    def sequence(self, files: list) -> bool:
        """`sequence: auto` treats a folder as frames when it holds 2+ images that all share one size."""
        if self.sequence_mode != "auto":
            return bool(self.sequence_mode)
        return len(files) >= 2 and len({image_size(p) for p in files}) == 1


class ColorizeStage:
    """Chroma from the model on each frame's luminance, stabilised over time along optical flow
    (restoregan.inference.temporal). The stabiliser is a recursive filter: it starts afresh at the first frame
    handed in, so each segment gets `warmup` frames before it as context, whose output is dropped."""

    scale = 1

    def __init__(self, name: str, task: ColorizationTask, model: Any, run: RunOptions) -> None:
        self.name, self.task, self.model, self.run = name, task, model, run
        self.space, self.render_size = task.model_settings(model)
        self.context = (task.warmup if task.stabilize else 0, 0)

    def rate(self, fps: Fraction) -> Fraction:
        return fps

    @torch.no_grad()
    def __call__(self, items: Iterator[Item]) -> Iterator[Item]:
        task = self.task
        stabilizer = ChromaStabilizer(task.stabilize_strength) if task.stabilize else None
        prev_lum = None
        for batch in batches(items, self.run.batch):
            x = torch.stack([to_tensor(it.image) for it in batch]).to(self.run.device)
            lums = luminance(x, self.space)  # (b, 1, H, W)
            chromas = predict_chroma(self.model.net, lums, self.render_size).cpu().numpy()  # one forward pass
            for it, lum, raw in zip(batch, lums, chromas):
                lum_np = lum[0].cpu().numpy()
                stable = raw
                if stabilizer is not None:
                    motion = Motion(prev_lum, lum_np, task.scene_cut) if prev_lum is not None else None
                    stable = stabilizer(raw, motion)
                prev_lum = lum_np
                rgb = compose(lum[None], torch.from_numpy(stable)[None].to(lum.device), self.space)
                yield Item(it.index, it.pts, it.tb, quantize(rgb[0].permute(1, 2, 0).cpu().numpy()))


# --- chroma prediction ---------------------------------------------------------------------------------------
def render_shape(h: int, w: int, render_size: int | None) -> tuple[int, int]:
    """(h, w) at which chroma is rendered: the shorter side scaled to `render_size`, both sides multiples of
    32 (the U-Net's stride), never above the input size. DeOldify's render_factor is render_size / 16."""
    if render_size is None:
        return h, w
    factor = min(1.0, render_size / min(h, w))
    return max(32, round(h * factor / 32) * 32), max(32, round(w * factor / 32) * 32)


def predict_chroma(net: nn.Module, lum: Tensor, render_size: int | None = None) -> Tensor:
    """Luminance (b, 1, H, W) -> scaled chroma (b, 2, H, W), rendered at `render_size` (None = full size) and
    upsampled bilinearly: chroma is smooth, and the network sees scenes at the scale it was trained on."""
    h, w = lum.shape[-2:]
    rh, rw = render_shape(h, w, render_size)
    if (rh, rw) == (h, w):
        return net(lum)
    small = F.interpolate(lum, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(net(small), size=(h, w), mode="bilinear", align_corners=False)


def colorize(net: nn.Module, lum: Tensor, space: str = "yuv", render_size: int | None = None) -> Tensor:
    """Luminance (b, 1, H, W) -> RGB (b, 3, H, W) with that luminance (see predict_chroma)."""
    return compose(lum, predict_chroma(net, lum, render_size), space)


# --- evaluation photos -----------------------------------------------------------------------------------------
def colour_photos(source: str, holdout_every: int | None = None) -> list[Path]:
    """A folder of colour photos, or "skimage:val" / "skimage:train" / "skimage:all" (the wheel's photos).
    holdout_every=N: only the folder's photos that training with `holdout_every: N` held out (every N-th)."""
    if source.startswith("skimage"):
        return skimage_photos(source.split(":")[1] if ":" in source else "val")
    return holdout_split(list_images(source), holdout_every, held_out=True)


def is_grey(img: np.ndarray) -> bool:
    """No channel differs from the mean by a grey level: nothing to score colour against."""
    return bool(np.abs(img - img.mean(axis=2, keepdims=True)).max() < 1 / 255)
