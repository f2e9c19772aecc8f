"""Colour spaces for colorization: luminance + chroma split and recomposition, torch, (..., 3, H, W) in [0, 1].

Two spaces, chosen by name:
- "yuv": BT.601 analog YUV (kornia's rgb_to_yuv; Y = 0.299 R + 0.587 G + 0.114 B, as cv2/PIL grey). Linear,
  so `compose` can keep the input's Y exactly: out-of-gamut chroma is shrunk towards grey per pixel, never
  clipped channel-wise (clipping would change the luminance).
- "lab": CIE L*a*b* (D65), kornia's rgb_to_lab / lab_to_rgb; out-of-gamut colours are clipped, so L may move
  where the predicted chroma leaves the sRGB gamut.

Chroma is handed to and from networks divided by CHROMA_SCALE, so both spaces give values of order 1.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab, rgb_to_yuv
from torch import Tensor

SPACES = ("yuv", "lab")
CHROMA_SCALE = {"yuv": 0.5, "lab": 100.0}  # |u| <= 0.44, |v| <= 0.62; |a|, |b| <= ~110

# kornia's rgb_to_yuv matrix (rows Y, U, V). Its yuv_to_rgb uses rounded coefficients (1.14, 0.396, ...)
# whose round trip is off by up to 1e-3; the exact inverse keeps Y to float precision, which the
# "output luminance equals the input's" guarantee needs.
_RGB_TO_YUV = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.147, -0.289, 0.436], [0.615, -0.515, -0.100]], dtype=torch.float64
)
_YUV_TO_RGB = torch.linalg.inv(_RGB_TO_YUV)


def check_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"colour space must be one of {SPACES}, got {space!r}")
    return space


def _matrix(m: Tensor, like: Tensor) -> Tensor:
    return m.to(device=like.device, dtype=like.dtype)


def yuv_to_rgb(yuv: Tensor) -> Tensor:
    """Exact inverse of kornia.color.rgb_to_yuv (see _YUV_TO_RGB); no clipping."""
    return torch.einsum("ij,...jhw->...ihw", _matrix(_YUV_TO_RGB, yuv), yuv)


def luminance(rgb: Tensor, space: str = "yuv") -> Tensor:
    """(..., 3, H, W) RGB -> (..., 1, H, W): Y in [0, 1] for "yuv", L/100 in [0, 1] for "lab"."""
    if check_space(space) == "yuv":
        return rgb_to_yuv(rgb)[..., :1, :, :]
    return rgb_to_lab(rgb.clamp(0, 1))[..., :1, :, :] / 100.0


def chroma(rgb: Tensor, space: str = "yuv") -> Tensor:
    """(..., 3, H, W) RGB -> (..., 2, H, W) chroma (UV or ab) divided by CHROMA_SCALE[space]."""
    if check_space(space) == "yuv":
        return rgb_to_yuv(rgb)[..., 1:, :, :] / CHROMA_SCALE["yuv"]
    return rgb_to_lab(rgb.clamp(0, 1))[..., 1:, :, :] / CHROMA_SCALE["lab"]


def grey_rgb(rgb: Tensor, space: str = "yuv") -> Tensor:
    """The image without its colour, as RGB with R = G = B (what a black-and-white photo of it holds)."""
    lum = luminance(rgb, space)
    if space == "lab":
        return compose(lum, torch.zeros_like(torch.cat([lum, lum], dim=-3)), "lab")
    return lum.expand(*lum.shape[:-3], 3, *lum.shape[-2:]).clone()


def compose(lum: Tensor, chroma_n: Tensor, space: str = "yuv") -> Tensor:
    """Luminance (..., 1, H, W) in [0, 1] + scaled chroma (..., 2, H, W) -> RGB (..., 3, H, W) in [0, 1].

    "yuv": RGB = Y + t * d(u, v), with t in [0, 1] the largest factor that keeps every channel in [0, 1];
    d has zero luma, so the result's Y equals `lum` whatever the chroma. Differentiable almost everywhere.
    """
    if check_space(space) == "lab":
        lab = torch.cat([lum * 100.0, chroma_n * CHROMA_SCALE["lab"]], dim=-3)
        return lab_to_rgb(lab, clip=True)
    y = lum.clamp(0, 1)
    zeros = torch.zeros_like(y)
    d = yuv_to_rgb(torch.cat([zeros, chroma_n * CHROMA_SCALE["yuv"]], dim=-3))  # (..., 3, H, W), luma 0
    eps = 1e-6
    # per channel: how far towards d the pixel may move before leaving [0, 1]
    room = torch.where(d > 0, (1 - y) / d.clamp(min=eps), torch.where(d < 0, y / (-d).clamp(min=eps), torch.ones_like(d)))
    t = room.amin(dim=-3, keepdim=True).clamp(0, 1)
    return (y + t * d).clamp(0, 1)  # the clamp only removes float rounding
