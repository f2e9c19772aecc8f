"""Single-image super-resolution: `lq` (b, 3, h, w) -> `gt` (b, 3, h*s, w*s).

Metrics follow the literature's Set5/Set14/BSD100 tables: PSNR and SSIM of the BT.601 Y channel on 8-bit
quantised images, `scale` pixels cropped from each border, single-channel source images on 0-255 grey levels
(`restoregan.metrics.image`). Baseline: MATLAB-style bicubic upscaling of the input. evaluate.py reads HR images
from `hr_dir`, LR images from `lr_dir` (paired by stem, else by sorted order) or, without one, makes them from HR
with MATLAB-compatible bicubic rounded to 8 bits, as the published benchmark LR files were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from restoregan.data.imresize import imresize
from restoregan.data.io import list_images, quantize, read_image, to_tensor
from restoregan.metrics.image import psnr_y, ssim_y
from restoregan.tasks.base import EvalData, task_config
from restoregan.data.datasets import mod_crop
from restoregan.tasks.image import ImageToImageTask, dataset_name, min_side, refuse_small


class SuperResolutionTask(ImageToImageTask):
    name = "sr"
    metric_columns: ClassVar[list[tuple[str, str, int]]] = [
        ("psnr", "PSNR-Y (dB)", 2), ("ssim", "SSIM-Y", 4), ("lpips", "LPIPS", 4)]

    def __init__(self, scale: int = 4) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale={scale}: must be a whole number >= 1")
        self.scale = scale
        self.output_suffix = f"_x{scale}"
        sets = "../shared/data/benchmarks/Set5"
        self.evaluate_hint = f"hr_dir={sets}/x{scale}/HR lr_dir={sets}/x{scale}/LR"

    def config(self) -> dict:
        return task_config(self, scale=self.scale)

    @classmethod
    def adopt(cls, purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
        """Community models that enlarge RGB images (spandrel purpose "SR", scale above 1)."""
        if purpose == "SR" and scale > 1 and channels in ((3, 3), (None, None)):
            return task_config(cls.__new__(cls), scale=scale)
        return None

    @classmethod
    def from_legacy(cls, word: str, meta: Mapping[str, Any]) -> dict | None:
        return task_config(cls.__new__(cls), scale=int(meta.get("scale", 4))) if word == "sr" else None

    # --- training ---
    def baselines(self, batch: dict) -> dict[str, Tensor]:
        """What a model must beat: MATLAB-style bicubic upscaling of the input."""
        return {"bicubic": imresize(batch["lq"], scale=self.scale).clamp(0, 1)}

    def metrics(self, output: Tensor, batch: dict) -> dict[str, Tensor]:
        """Y channel, `scale` pixels cropped from each border, 8-bit quantised; items flagged `grey` (a
        single-channel source file) on 0-255 grey levels."""
        out, tgt = quantize(output), quantize(self.target(batch))
        grey = batch.get("grey")
        flags = [bool(g) for g in grey] if grey is not None else [False] * out.shape[0]
        psnr = [float(psnr_y(o[None], t[None], self.scale, g)[0]) for o, t, g in zip(out, tgt, flags)]
        ssim = [float(ssim_y(o[None], t[None], self.scale, g)[0]) for o, t, g in zip(out, tgt, flags)]
        return {"psnr": torch.tensor(psnr, dtype=torch.float64), "ssim": torch.tensor(ssim, dtype=torch.float64)}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        """Columns of the validation image grid, all at target size: LR | bicubic | SR | HR."""
        lq = batch["lq"]
        return [
            ("LR (nearest)", F.interpolate(lq, scale_factor=self.scale, mode="nearest")),
            ("bicubic", self.baselines(batch)["bicubic"]),
            ("SR", output.clamp(0, 1)),
            ("HR", self.target(batch)),
        ]

    # --- evaluation ---
    def eval_data(self, cfg: DictConfig) -> EvalData:
        if cfg.get("hr_dir") is None:
            raise ValueError("hr_dir=... is required for super-resolution (python evaluate.py ckpt=... hr_dir=DIR "
                             "[lr_dir=DIR] out_dir=...)")
        hr_dir = Path(cfg.hr_dir)
        lr_dir = Path(cfg.lr_dir) if cfg.get("lr_dir") is not None else None
        pairs = pair_images(hr_dir, lr_dir)
        s = self.scale
        why = f"SSIM-Y's 11x11 window inside the {s}-pixel border crop"
        refuse_small([hr for hr, _ in pairs], *min_side(11 + 2 * s, why, cfg), s)

        def items():
            for hr_path, lr_path in pairs:
                hr = mod_crop(read_image(hr_path), s)
                if lr_path is None:  # what a MATLAB-made LR PNG holds: antialiased bicubic, then 8 bits
                    lr = quantize(imresize(hr, scale=1 / s))
                else:
                    lr = read_image(lr_path)
                    if (lr.shape[0] * s, lr.shape[1] * s) != hr.shape[:2]:
                        raise ValueError(
                            f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} times {s} does not match HR {hr_path} "
                            f"of size {hr.shape[1]}x{hr.shape[0]} (after cropping to a multiple of {s})")
                yield {"lq": to_tensor(lr)[None], "gt": to_tensor(hr)[None], "name": hr_path.name,
                       "grey": torch.tensor([single_channel(hr_path)])}

        header = {
            "dataset": cfg.get("dataset") or dataset_name(hr_dir),
            "hr_dir": str(hr_dir),
            "lr_dir": None if lr_dir is None else str(lr_dir),
            "lr_source": "matlab_bicubic" if lr_dir is None else "provided",
            "task": self.name,
            "scale": s,
            "crop_border": s,
        }
        title = lambda h, n: f"{h['dataset']} x{s} (LR: {h['lr_source']}, crop_border={s})"  # noqa: E731
        return EvalData(items(), header, title, [hr_dir, lr_dir], count=len(pairs))


def single_channel(path: Path) -> bool:
    """Whether the file itself is greyscale (read_image hands it over as RGB)."""
    with Image.open(path) as im:
        return im.mode == "LA" or len(im.getbands()) == 1


def pair_images(hr_dir: Path, lr_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """(HR, LR) pairs: by stem when both folders use the same stems, else by sorted order."""
    if not hr_dir.is_dir():
        raise ValueError(f"{hr_dir}: HR folder not found")
    hrs = list_images(hr_dir)
    if lr_dir is None:
        return [(hr, None) for hr in hrs]
    if not lr_dir.is_dir():
        raise ValueError(f"{lr_dir}: LR folder not found")
    lrs = list_images(lr_dir)
    if len(lrs) != len(hrs):
        raise ValueError(f"{lr_dir}: {len(lrs)} LR images but {hr_dir} holds {len(hrs)} HR images")
    by_stem = {p.stem: p for p in lrs}
    if set(by_stem) == {p.stem for p in hrs}:
        return [(hr, by_stem[hr.stem]) for hr in hrs]
    return list(zip(sorted(hrs), sorted(lrs)))

