"""Losses of the frame-interpolation literature, each `forward(pred, target)` on (b, 3, h, w) in [0, 1].

Pixel (Charbonnier/L1) and perceptual terms are `restoregan.losses.pixel` / `.perceptual`; these add
- `LaplacianPyramidLoss`: L1 on every band of a Laplacian pyramid (Bojanowski et al. 2018's Lap1, as RIFE
  uses it: the mean L1 of each band, summed): a misplaced edge is counted in every band it shows up in;
- `CensusLoss`: the soft ternary census transform of Meister et al. (UnFlow, 2018), as in RIFE/IFRNet:
  compares local intensity orderings, so it is robust to the brightness flicker of old film.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.geometry.transform import build_laplacian_pyramid
from torch import Tensor, nn


class LaplacianPyramidLoss(nn.Module):
    """sum over levels l of mean |Lap_l(pred) - Lap_l(target)|; the last level is the low-pass residual.

    Levels that would be smaller than 4 pixels are dropped, so small crops work.
    """

    def __init__(self, max_levels: int = 5) -> None:
        super().__init__()
        self.max_levels = max_levels

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        levels = self.max_levels
        while levels > 1 and min(pred.shape[-2:]) >> (levels - 1) < 4:
            levels -= 1
        pyr_p = build_laplacian_pyramid(pred, levels)
        pyr_t = build_laplacian_pyramid(target, levels)
        return sum(F.l1_loss(p, t) for p, t in zip(pyr_p, pyr_t))


def ternary_transform(img: Tensor, patch: int = 7) -> Tensor:
    """(b, 3, h, w) -> (b, patch**2, h, w): soft sign of each neighbour minus the centre, on 0-255 grey levels."""
    grey = rgb_to_grayscale(img) * 255.0  # UnFlow's constants assume 8-bit intensities
    neighbours = F.unfold(grey, patch, padding=patch // 2).view(img.shape[0], patch * patch, *img.shape[-2:])
    diff = neighbours - grey
    return diff / torch.sqrt(0.81 + diff**2)


class CensusLoss(nn.Module):
    """Soft Hamming distance between ternary transforms (mean over the patch, as IFRNet), mean over pixels
    away from the border; in [0, 1)."""

    def __init__(self, patch: int = 7) -> None:
        super().__init__()
        self.patch = patch

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        d = (ternary_transform(pred, self.patch) - ternary_transform(target, self.patch)) ** 2
        dist = (d / (0.1 + d)).mean(1, keepdim=True)  # (b, 1, h, w)
        r = self.patch // 2  # the zero padding makes border transforms meaningless: leave them out
        return dist[..., r:-r, r:-r].mean()
