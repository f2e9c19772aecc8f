"""CIEDE2000 colour difference as a differentiable loss (Sharma, Wu & Dalal 2005, "The CIEDE2000 colour-difference
formula: implementation notes").

Written here because neither kornia nor torchmetrics has it in torch; skimage.color.deltaE_ciede2000 (numpy, no
gradient) is what evaluate.py reports and what the tests compare this with. Training on the metric itself matters
for colorization: an L1 on chroma counts a miss on a saturated colour as much as one on a neutral, while CIEDE2000
forgives chroma errors on saturated colours (S_C = 1 + 0.045 C) and penalises hue errors on them, so a loss that
is not the metric learns a trade-off the metric does not reward.

Gradients are kept finite where the formula has kinks (zero chroma: hue undefined; sqrt at 0) by evaluating the
hue of near-grey colours on a safe stand-in and adding `eps` under square roots.
"""

from __future__ import annotations

import math

import torch
from kornia.color import rgb_to_lab
from torch import Tensor, nn

_25_POW_7 = 25.0**7


def _deg(x: float) -> float:
    return math.radians(x)


def _safe_hue(b: Tensor, a: Tensor, grey: Tensor) -> Tensor:
    """atan2(b, a) in [0, 2 pi); 0 (and no gradient) where the colour is grey."""
    h = torch.atan2(torch.where(grey, torch.zeros_like(b), b), torch.where(grey, torch.ones_like(a), a))
    return torch.where(grey, torch.zeros_like(h), torch.remainder(h, 2 * math.pi))


def ciede2000(lab1: Tensor, lab2: Tensor, dim: int = -3, eps: float = 1e-8) -> Tensor:
    """CIEDE2000 between Lab colours (L in [0, 100], a/b unscaled) stacked along `dim`; kL = kC = kH = 1.
    Returns the difference with `dim` removed."""
    L1, a1, b1 = lab1.unbind(dim)
    L2, a2, b2 = lab2.unbind(dim)
    c_bar = 0.5 * (torch.sqrt(a1 * a1 + b1 * b1 + eps) + torch.sqrt(a2 * a2 + b2 * b2 + eps))
    c7 = c_bar**7
    g = 0.5 * (1.0 - torch.sqrt(c7 / (c7 + _25_POW_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p = torch.sqrt(a1p * a1p + b1 * b1 + eps)
    c2p = torch.sqrt(a2p * a2p + b2 * b2 + eps)
    tiny = 1e-4  # below this chroma the hue is undefined (Sharma: h' = 0 where a' = b = 0)
    grey1, grey2 = c1p < tiny, c2p < tiny
    h1p, h2p = _safe_hue(b1, a1p, grey1), _safe_hue(b2, a2p, grey2)
    either_grey = grey1 | grey2

    dl = L2 - L1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(either_grey, torch.zeros_like(dh), dh)
    d_big_h = 2.0 * torch.sqrt(c1p * c2p + eps) * torch.sin(dh / 2.0)

    l_bar = 0.5 * (L1 + L2)
    cp_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_bar = torch.where(
        (h1p - h2p).abs() <= math.pi,
        h_sum / 2.0,
        torch.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2.0, (h_sum - 2 * math.pi) / 2.0),
    )
    h_bar = torch.where(either_grey, h_sum, h_bar)
    t = (
        1.0
        - 0.17 * torch.cos(h_bar - _deg(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + _deg(6))
        - 0.20 * torch.cos(4 * h_bar - _deg(63))
    )
    d_theta = _deg(30) * torch.exp(-(((h_bar - _deg(275)) / _deg(25)) ** 2))
    cp7 = cp_bar**7
    r_c = 2.0 * torch.sqrt(cp7 / (cp7 + _25_POW_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / torch.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -torch.sin(2 * d_theta) * r_c
    tl, tc, th = dl / s_l, dc / s_c, d_big_h / s_h
    return torch.sqrt((tl * tl + tc * tc + th * th + r_t * tc * th).clamp_min(0) + eps)


class DeltaE2000Loss(nn.Module):
    """Mean CIEDE2000 between RGB (b, 3, h, w) prediction and target in [0, 1] (sRGB, D65, as skimage's rgb2lab),
    divided by `scale` so its size is comparable with the scaled-chroma L1 losses (ΔE ~ 10-20 for a grey guess)."""

    def __init__(self, scale: float = 10.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"DeltaE2000Loss: scale must be > 0, got {scale}")
        self.scale = scale

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        lab_pred = rgb_to_lab(pred.float().clamp(0, 1))
        lab_target = rgb_to_lab(target.float().clamp(0, 1))
        return ciede2000(lab_target, lab_pred).mean() / self.scale
