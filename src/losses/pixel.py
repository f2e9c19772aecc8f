"""Pixel losses between a prediction and its target, both (b, c, h, w); each returns the mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class L1Loss(nn.Module):
    """Mean absolute error: the PSNR-oriented loss of ESRGAN and Real-ESRGAN (sharper than MSE)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target)


class MSELoss(nn.Module):
    """Mean squared error: SRResNet / SRGAN pretraining (maximises PSNR directly, but blurs)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target)


class CharbonnierLoss(nn.Module):
    """sqrt(d^2 + eps^2): a differentiable L1 (LapSRN). ~|d| for |d| >> eps, quadratic near 0."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()
