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


class RebalancedChromaL1Loss(nn.Module):
    """Chroma L1 with each pixel weighted by the inverse smoothed frequency of its target colour: Zhang et al.
    2016's class rebalancing, applied to a regression loss.

    A few photo sets (BSD100: mostly vegetation) make the L1-optimal hedge one global tint (olive), which is
    wrong on skin, food or sky; weighting rare colours up moves the hedge off the dominant one. The chroma
    plane [-range, range]^2 (scaled units) is cut into bins x bins cells; their frequencies are a running
    average over training batches (a buffer, so checkpoints keep it), weights 1 / ((1 - mix) p + mix / Q)
    over the Q cells seen so far, normalised to mean 1 over the pixels of the batch.
    """

    def __init__(self, space: str = "yuv", bins: int = 24, value_range: float = 1.2, mix: float = 0.5,
                 momentum: float = 0.99) -> None:
        super().__init__()
        if bins < 2 or not 0.0 < mix <= 1.0 or not 0.0 <= momentum < 1.0:
            raise ValueError(
                "RebalancedChromaL1Loss: need bins >= 2, 0 < mix <= 1, 0 <= momentum < 1; "
                f"got {bins}, {mix}, {momentum}"
            )
        self.space = check_space(space)
        self.bins, self.value_range, self.mix, self.momentum = bins, value_range, mix, momentum
        self.register_buffer("freq", torch.zeros(bins * bins))

    def cell(self, c: Tensor) -> Tensor:
        """(b, 2, h, w) scaled chroma -> (b, h, w) cell index."""
        idx = ((c + self.value_range) / (2 * self.value_range) * self.bins).long().clamp(0, self.bins - 1)
        return idx[:, 0] * self.bins + idx[:, 1]

    def weights(self, target_chroma: Tensor) -> Tensor:
        cells = self.cell(target_chroma.detach())
        if self.training:
            hist = torch.bincount(cells.flatten(), minlength=self.bins**2).to(self.freq.dtype)
            hist = hist / hist.sum()
            # tensor ops only: no host sync in the training step on a GPU
            first = self.freq.sum() == 0
            self.freq.copy_(torch.where(first, hist, self.momentum * self.freq + (1 - self.momentum) * hist))
        p = self.freq / self.freq.sum().clamp_min(1e-12)
        seen = (p > 0).sum().clamp_min(1)
        w = 1.0 / ((1 - self.mix) * p + self.mix / seen)
        pixel_w = w[cells]
        return pixel_w / pixel_w.mean()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        c_pred, c_target = chroma(pred, self.space), chroma(target, self.space)
        return (self.weights(c_target).unsqueeze(1) * (c_pred - c_target).abs()).mean()
