"""Frame interpolation as a task of the GAN module: (frame0, frame1, t) -> the frame at t.

Batches come from `restoregan.data.triplet_dataset`: `frame0`, `frame1`, `gt` (b, 3, h, w) and `t` (b,).
Metrics follow the interpolation literature (Vimeo-90K / UCF101 tables): PSNR on RGB and SSIM (Wang et al.'s
reference SSIM on BT.601 luma, the value of `restoregan.metrics.image.ssim_y`), both on 8-bit quantised
frames, no border crop. Baselines: repeating frame0 and linear blending, the "bicubic" of time.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from restoregan.data.io import quantize
from restoregan.metrics.image import rgb_to_y


def psnr_rgb(pred: Tensor, target: Tensor) -> Tensor:
    """(b, 3, h, w) in [0, 1] -> (b,) PSNR in dB over all RGB values (float64, inf for identical frames)."""
    mse = ((pred.double() - target.double()) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


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


def frame_scores(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """{"psnr": (b,), "ssim": (b,)} of 8-bit quantised frames."""
    pred, target = quantize(pred), quantize(target)
    return {"psnr": psnr_rgb(pred, target).cpu(), "ssim": ssim_luma(pred, target)}


def blend(frame0: Tensor, frame1: Tensor, t: Tensor) -> Tensor:
    """(1 - t) frame0 + t frame1, t (b,)."""
    t = t.view(-1, 1, 1, 1).to(frame0)
    return (1 - t) * frame0 + t * frame1


class InterpolationTask:
    name = "interp"

    def __init__(self, scale: int = 1) -> None:
        # train.yaml's task node passes ${scale}; an interpolated frame is the size of its inputs
        if scale != 1:
            raise ValueError(f"frame interpolation keeps the frame size: scale must be 1, got {scale}")
        self.scale = 1

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

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, float]:
        return {k: float(v.mean()) for k, v in frame_scores(output, target).items()}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        return [
            ("frame0", batch["frame0"]),
            ("blend", self.baselines(batch)["blend"]),
            ("interpolated", output.clamp(0, 1)),
            ("ground truth", batch["gt"]),
            ("frame1", batch["frame1"]),
        ]
