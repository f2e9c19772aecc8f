"""Chroma-space losses for colorization, on RGB (b, 3, h, w) prediction and target.

The luminance is the input's and not the generator's to change, so these compare colour only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.data.color import chroma, check_space


class ChromaL1Loss(nn.Module):
    """L1 between the chroma (UV or ab, scaled to order 1) of prediction and target."""

    def __init__(self, space: str = "yuv") -> None:
        super().__init__()
        self.space = check_space(space)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(chroma(pred, self.space), chroma(target, self.space))


class SaturationLoss(nn.Module):
    """How much less saturated the prediction is than the target: mean(relu(|c_target| - |c_pred|)).

    Regression to the mean makes an uncertain colorizer predict grey-brown (the average of plausible
    colours); this one-sided term pays only for missing saturation, never for colour the target lacks, so
    it pushes towards committing to a colour without rewarding garish ones on grey targets.
    """

    def __init__(self, space: str = "yuv") -> None:
        super().__init__()
        self.space = check_space(space)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        magnitude = lambda x: torch.linalg.vector_norm(chroma(x, self.space), dim=-3)  # noqa: E731
        return F.relu(magnitude(target) - magnitude(pred)).mean()
