"""What image-to-image tasks share (super-resolution, film restoration, a denoiser): the generator maps a
degraded image `lq` to `gt`; a loaded model runs tiled (`restoregan.inference.tiled`); a video is restored frame
by frame; evaluate.py degrades each clean image of `hr_dir` with `degrade` and scores the result.

A subclass sets `name`, `output_suffix`, `baselines`, and `degrade` (or its own `eval_data`)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from omegaconf import DictConfig
from torch import Tensor, nn

from restoregan.data.datasets import mod_crop
from restoregan.data.io import ImageReadError, inspect_image, list_images, quantize, read_image, to_tensor
from restoregan.gans.checkpoint import CheckpointError
from restoregan.gans.temporal_restorer import takes_clips
from restoregan.inference.tiled import apply_tiled
from restoregan.metrics.image import psnr_rgb, ssim_rgb
from restoregan.tasks.base import EvalData, FrameByFrame, RunOptions, Stage, task_config

RGB_COLUMNS = [("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (RGB)", 4), ("lpips", "LPIPS", 4)]


class ImageToImageTask:
    """`lq` (b, 3, h, w) -> `gt` (b, 3, h*s, w*s) with a plain `net(x)` generator."""

    abstract_task = True  # a base to derive from, not a task a model file may name (subclasses are concrete)

    name: str = "image"
    scale: int = 1
    output_suffix: str = "_out"
    evaluate_hint: str = "hr_dir=CLEAN_IMAGES_DIR"
    grid_crop: int = 96
    metric_columns: ClassVar[list[tuple[str, str, int]]] = RGB_COLUMNS
    pipeline_first: ClassVar[bool] = False

    def config(self) -> dict:
        return task_config(self)

    def check_network(self, path: Any, net: nn.Module, arch: dict | None) -> None:
        """RGB in, RGB out, one image in: a network declaring other channel counts (also by its class's defaults:
        a colorizer's 2 chroma channels) or taking more than an image (an interpolation net) is no model of this
        task."""
        if takes_clips(net):  # its forward(x) takes one argument too, but x is a clip
            what = (arch or {}).get("_target_") or type(net).__name__
            raise CheckpointError(f"{path}: its generator {what} takes clips; task {self.name} runs image-to-image "
                                  "networks (a temporal restorer's task is restore_video)")
        params = inspect.signature(type(net)).parameters
        for key in ("num_in_ch", "num_out_ch"):
            got = (arch or {}).get(key, params[key].default if key in params else 3)
            if got != 3:
                raise CheckpointError(f"{path}: generator.{key}: {got}, but task {self.name} needs 3 channels")
        needed = [p.name for p in inspect.signature(net.forward).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(needed) != 1:
            what = (arch or {}).get("_target_") or type(net).__name__
            raise CheckpointError(f"{path}: its generator {what} takes ({', '.join(needed)}), not one image; task "
                                  f"{self.name} runs image-to-image networks")

    # --- training ---
    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return net(batch["lq"])

    def target(self, batch: dict) -> Tensor:
        return batch["gt"]

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        return self.target(batch), output

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        return {"input": batch["lq"]}

    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]:
        """RGB PSNR and SSIM of 8-bit quantised images, no border crop."""
        out, tgt = quantize(output), quantize(self.target(batch))
        return {"psnr": psnr_rgb(out, tgt).cpu(), "ssim": ssim_rgb(out, tgt)}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [(name, img) for name, img in self.baselines(batch).items()] + [
            ("output", output.clamp(0, 1)), ("target", self.target(batch))]

    # --- evaluation ---
    def degrade(self, clean: np.ndarray, index: int) -> np.ndarray:
        """The degraded input evaluate.py makes of clean image number `index` (deterministic)."""
        raise NotImplementedError(f"{type(self).__name__} defines no degradation for evaluate.py")

    def eval_data(self, cfg: DictConfig) -> EvalData:
        """Each clean image of `hr_dir` degraded by `degrade` (cropped to a multiple of the scale)."""
        if cfg.get("hr_dir") is None:
            raise ValueError(f"hr_dir=... is required for task {self.name} (python evaluate.py ckpt=... "
                             "hr_dir=CLEAN_IMAGES out_dir=...)")
        folder = Path(cfg.hr_dir)
        if not folder.is_dir():
            raise ValueError(f"{folder}: folder of clean images not found")
        paths = list_images(folder)
        refuse_small(paths, *min_side(11, "SSIM's 11x11 Gaussian window", cfg), self.scale)

        def items():
            for i, path in enumerate(paths):
                clean = mod_crop(read_image(path), self.scale)
                lq = self.degrade(clean, i)
                yield {"lq": to_tensor(lq)[None], "gt": to_tensor(clean)[None], "name": path.name}

        header = {"dataset": cfg.get("dataset") or folder.name, "hr_dir": str(folder), "task": self.name}
        return EvalData(items(), header, lambda h, n: f"{h['dataset']}: {self.name} ({n} images)", [folder],
                        count=len(paths))

    def run_batch(self, model: Any, batch: dict, run: RunOptions) -> Tensor:
        return self.apply_batch(model, batch["lq"], run)

    # --- application ---
    def apply_batch(self, model: Any, x: Tensor, run: RunOptions) -> Tensor:
        return apply_tiled(model.net, x, model.scale, run.tile, run.tile_overlap, run.device, run.half,
                       pad_multiple=model.pad_multiple)

    def stage(self, name: str, model: Any, run: RunOptions) -> Stage:
        return FrameByFrame(name, self, model, run)

    def sequence(self, files: list) -> bool:
        return False  # each image on its own (a folder of frames too: no frame needs another)


def refuse_small(paths: list[Path], least: int, why: str, multiple: int = 1) -> None:
    """Refuse, from the headers and before any model runs, an image too small to score, in one line naming it.
    Refused rather than skipped: a report whose means quietly cover fewer images could not be compared with
    another run's or a published figure, and the fix (leave the image out) is the user's to make."""
    least = -(-least // multiple) * multiple  # the size a file must have, its crop to the scale included
    for path in paths:
        info = inspect_image(path)
        h, w = info.height - info.height % multiple, info.width - info.width % multiple
        if min(h, w) < least:
            cropped = f" (cropped to a multiple of the scale {multiple})" if multiple > 1 else ""
            raise ImageReadError(f"{path}: {w}x{h} image{cropped} is too small to score: {why} needs at least "
                                 f"{least}x{least}; leave it out of the folder")


# The smallest side each LPIPS trunk's pooling stages accept (lpips 0.1.4; it scores whole images).
LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}


def min_side(least: int, why: str, cfg: DictConfig) -> tuple[int, str]:
    """(smallest image side evaluate.py can score, which metric sets it): `least` for the task's own metric, more
    when LPIPS is on (cfg.lpips, cfg.lpips_net)."""
    needs = [(least, why)]
    if cfg.get("lpips"):
        net = cfg.get("lpips_net", "alex")
        needs.append((LPIPS_MIN_SIDE.get(net, 32), f"LPIPS ({net}) (lpips=false lifts it)"))
    return max(needs)


def dataset_name(hr_dir: Path) -> str:
    """`.../Set5/x4/HR` -> `Set5`; any other folder -> its own name."""
    parts = hr_dir.resolve().parts
    if len(parts) >= 3 and parts[-1].upper() == "HR" and parts[-2].lower().startswith("x"):
        return parts[-3]
    return parts[-1]
