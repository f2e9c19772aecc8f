"""Tasks: how a batch becomes generator output, what the target and the baselines are, what to show.

The GAN module is task-agnostic; a new task (colorization, interpolation, film restoration) is a new small
class, in a file of its own, chosen in config (`task: {_target_: ...}`). The protocol:

    name: str                                   # "sr", "colorize", "interp": stored in checkpoints/exports
    scale: int                                  # output size / input size (1 unless super-resolution)
    generate(net, batch) -> Tensor              # generator output in target space, e.g. RGB (B,3,H,W)
    target(batch) -> Tensor                     # what the losses compare the output with
    discriminator_pair(batch, output) -> (real, fake)   # a conditional D concatenates its condition here
    baselines(batch) -> {name: Tensor}          # what a model must beat (bicubic, grey input, blending)
    metrics(output, target) -> {name: float}    # validation scores, also computed for each baseline
    grid_columns(batch, output) -> [(label, Tensor)]    # columns of the validation image grid
    export_meta() -> dict                       # optional: extra keys for exports/checkpoints (LoadedGenerator.meta)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.data.imresize import imresize
from restoregan.data.io import quantize
from restoregan.metrics.image import psnr_y, ssim_y


class SuperResolutionTask:
    """Single-image super-resolution: `lq` (B,3,h,w) -> `gt` (B,3,h*s,w*s)."""

    name = "sr"

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def inputs(self, batch: dict) -> Tensor:
        return batch["lq"]

    def generate(self, net: nn.Module, batch: dict) -> Tensor:
        return net(self.inputs(batch))

    def target(self, batch: dict) -> Tensor:
        return batch["gt"]

    def discriminator_pair(self, batch: dict, output: Tensor) -> tuple[Tensor, Tensor]:
        """(real, fake) as the discriminator sees them; a conditional task would concatenate its input here."""
        return self.target(batch), output

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        """What a model must beat: MATLAB-style bicubic upscaling of the input."""
        return {"bicubic": imresize(self.inputs(batch), scale=self.scale).clamp(0, 1)}

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, float]:
        """Literature conventions: Y channel, `scale` pixels cropped from each border, 8-bit quantised."""
        out, tgt = quantize(output), quantize(target)  # (b, 3, H, W): the metrics return (b,) scores
        return {"psnr": float(psnr_y(out, tgt, self.scale).mean()), "ssim": float(ssim_y(out, tgt, self.scale).mean())}

    def grid_columns(self, batch: dict, output: Tensor) -> list[tuple[str, Tensor]]:
        """Columns of the validation image grid, all at target size: LR | bicubic | SR | HR."""
        lq = self.inputs(batch)
        return [
            ("LR (nearest)", F.interpolate(lq, scale_factor=self.scale, mode="nearest")),
            ("bicubic", self.baselines(batch)["bicubic"]),
            ("SR", output.clamp(0, 1)),
            ("HR", self.target(batch)),
        ]

