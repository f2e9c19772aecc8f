"""Colorization task: grey `lq` (b, 3, h, w), R = G = B -> colour RGB with the input's luminance.

The generator sees the luminance and predicts chroma; `colorize` recombines them, so the luminance of every
output is the input's (exactly in YUV; see restoregan.data.color). The target is the original's chroma on
the input's luminance: with damaged inputs (fading, grain, ...) the losses and the discriminator then judge
colour alone, not a luminance the generator is not allowed to change.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.data.color import check_space, chroma, compose, luminance
from restoregan.data.io import quantize
from restoregan.metrics.color import colorfulness, delta_e, psnr_rgb, ssim_rgb


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


class ColorizationTask:
    name = "colorize"
    scale = 1

    def __init__(self, color_space: str = "yuv", render_size: int | None = None, scale: int = 1) -> None:
        """render_size: the scale (shorter side, pixels) of the scenes the model is trained on; stored in exports
        as the default chroma render size for evaluate.py / infer.py. Training itself runs at crop size."""
        # `scale` arrives from train.yaml's task defaults; anything but 1 is a config mistake
        if scale != 1:
            raise ValueError(f"colorization keeps the input size: scale must be 1, got {scale}")
        self.space = check_space(color_space)
        self.render_size = render_size

    def luminance(self, batch: dict) -> Tensor:
        return luminance(batch["lq"], self.space)  # (b, 1, h, w)

    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return colorize(net, self.luminance(batch), self.space)

    def target(self, batch: dict) -> Tensor:
        return compose(self.luminance(batch), chroma(batch["gt"], self.space), self.space)

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        """Conditional: (grey input, colour image) pairs, (b, 4, h, w)."""
        cond = self.luminance(batch)
        return torch.cat([cond, self.target(batch)], dim=1), torch.cat([cond, output], dim=1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        """The grey input itself: what 'no colour' scores."""
        lum = self.luminance(batch)
        return {"grey": compose(lum, torch.zeros_like(torch.cat([lum, lum], dim=1)), self.space)}

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, float]:
        """Means over the batch of RGB PSNR/SSIM, CIEDE2000 and colourfulness (also as a ratio to the target's)."""
        scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "delta_e": [], "colorfulness": [], "colorfulness_ratio": []}
        for out, tgt in zip(quantize(output), quantize(target)):
            o, t = out.permute(1, 2, 0).double().cpu().numpy(), tgt.permute(1, 2, 0).double().cpu().numpy()
            scores["psnr"].append(psnr_rgb(o, t))
            scores["ssim"].append(ssim_rgb(o, t))
            scores["delta_e"].append(delta_e(o, t))
            scores["colorfulness"].append(colorfulness(o))
            scores["colorfulness_ratio"].append(colorfulness(o) / max(colorfulness(t), 1e-6))
        return {k: float(np.mean(v)) for k, v in scores.items()}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [("grey", self.baselines(batch)["grey"]), ("colourised", output.clamp(0, 1)), ("original", batch["gt"])]

    def export_meta(self) -> dict:
        return {"color_space": self.space, "render_size": self.render_size}
