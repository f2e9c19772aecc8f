"""Film restoration as a task of the GAN module: damaged frame `lq` (b, 3, h, w) -> clean frame, same size.

The generator is a plain image-to-image net (`net(x)`, like a scale-1 super-resolution model), so evaluate.py,
infer.py and the film pipeline apply it tiled like any scale-1 model. Metrics: PSNR and SSIM on RGB (8-bit
quantised, no border crop; for grey film R = G = B, so these are the grey-level figures). Baselines: the
damaged input itself ("damaged") and a 3x3 median filter of it ("median", OpenCV), the classical remedy for
dust and grain.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from restoregan.data.io import quantize
from restoregan.metrics.color import psnr_rgb, ssim_rgb


def median3(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> its 3x3 median (OpenCV, 8-bit, replicated borders), float32."""
    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return cv2.medianBlur(u8, 3).astype(np.float32) / 255.0


def median3_batch(x: Tensor) -> Tensor:
    """(b, 3, h, w) -> the 3x3 median of each image, same device and dtype."""
    out = [torch.from_numpy(median3(img.permute(1, 2, 0).detach().cpu().numpy())).permute(2, 0, 1) for img in x]
    return torch.stack(out).to(x)


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """RGB PSNR (dB) and SSIM of (H, W, 3) images, both quantised to 8 bits first."""
    pred, target = quantize(pred), quantize(target)
    return {"psnr": psnr_rgb(pred, target), "ssim": ssim_rgb(pred, target)}


class RestorationTask:
    name = "restore"
    scale = 1

    def __init__(self, grey: bool = True, conditional: bool = True, scale: int = 1) -> None:
        """grey: trained on black-and-white film (stored in exports; evaluate.py greys its references then).
        conditional: the discriminator sees (damaged input, image) pairs, 6 channels, as pix2pix's does."""
        # `scale` arrives from train.yaml's task defaults; anything but 1 is a config mistake
        if scale != 1:
            raise ValueError(f"film restoration keeps the frame size: scale must be 1, got {scale}")
        self.grey, self.conditional = bool(grey), bool(conditional)

    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return net(batch["lq"])  # (b, 3, h, w)

    def target(self, batch: dict) -> Tensor:
        return batch["gt"]

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        if not self.conditional:
            return batch["gt"], output
        lq = batch["lq"]
        return torch.cat([lq, batch["gt"]], dim=1), torch.cat([lq, output], dim=1)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        return {"damaged": batch["lq"], "median": median3_batch(batch["lq"])}

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, float]:
        values = [scores(o.permute(1, 2, 0).double().cpu().numpy(), t.permute(1, 2, 0).double().cpu().numpy())
                  for o, t in zip(output.detach(), target.detach())]
        return {k: float(np.mean([v[k] for v in values])) for k in ("psnr", "ssim")}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [("damaged", batch["lq"]), ("restored", output.clamp(0, 1)), ("clean", batch["gt"])]

    def export_meta(self) -> dict:
        return {"grey": self.grey}
