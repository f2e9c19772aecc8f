"""PSNR and SSIM as the super-resolution literature reports them.

Conventions (Set5/Set14/BSD100 tables since SRCNN): compare the Y channel of ITU-R BT.601 YCbCr
(16-235, as MATLAB's `rgb2ycbcr`) on the 0-255 scale, after removing `crop_border` (= scale) pixels from
every side. SSIM is Wang et al.'s reference `ssim.m`: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03,
'valid' filtering, mean of the SSIM map. Computed in float64 like MATLAB's double arithmetic.

Inputs are RGB in [0, 1]: numpy `(H, W, 3)`, torch `(3, H, W)` (a float comes back) or `(B, 3, H, W)`
(a `(B,)` tensor comes back). Callers quantise outputs to 8 bits first (as an image on disk would be).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ImageLike = np.ndarray | Tensor

# MATLAB rgb2ycbcr for double input in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def rgb_to_y(img: ImageLike) -> ImageLike:
    """BT.601 luma in [16, 235] from RGB in [0, 1]: numpy (H,W,3) -> (H,W); torch (...,3,H,W) -> (...,H,W)."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"rgb_to_y: expected an (H, W, 3) array, got shape {img.shape}")
        return img.astype(np.float64) @ np.array(_Y_WEIGHTS) + _Y_OFFSET
    if img.dim() < 3 or img.shape[-3] != 3:
        raise ValueError(f"rgb_to_y: expected a (..., 3, H, W) tensor, got shape {tuple(img.shape)}")
    weights = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=img.device).view(3, 1, 1)
    return (img.to(torch.float64) * weights).sum(dim=-3) + _Y_OFFSET


def _grey_255(img: ImageLike) -> ImageLike:
    """First channel on 0-255: what MATLAB evaluation code compares for single-channel images."""
    if isinstance(img, np.ndarray):
        return img[..., 0].astype(np.float64) * 255.0
    return img[..., 0, :, :].to(torch.float64) * 255.0


def _y_batch(img: ImageLike, crop_border: int, grey: bool) -> tuple[Tensor, bool]:
    """(B, 1, H', W') float64 Y channel with the border removed, and whether the input was a single image."""
    to_y = _grey_255 if grey else rgb_to_y
    if isinstance(img, np.ndarray):
        y, single = torch.from_numpy(to_y(img))[None], True
    else:
        single = img.dim() == 3
        y = to_y(img[None] if single else img)
    if crop_border > 0:
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    if y.shape[-1] == 0 or y.shape[-2] == 0:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {tuple(img.shape)} image")
    return y[:, None], single


def _pair(pred: ImageLike, target: ImageLike, crop_border: int, grey: bool) -> tuple[Tensor, Tensor, bool]:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    yp, single = _y_batch(pred, crop_border, grey)
    yt, _ = _y_batch(target, crop_border, grey)
    return yp, yt.to(yp.device), single


def _result(values: Tensor, single: bool) -> float | Tensor:
    return float(values[0]) if single else values


def psnr_y(pred: ImageLike, target: ImageLike, crop_border: int, grey: bool = False) -> float | Tensor:
    """PSNR (dB) of the Y channel on the 0-255 scale, `crop_border` pixels removed from each side.

    `grey=True` for single-channel source images: the reference MATLAB scripts skip rgb2ycbcr for them and
    compare grey levels on the full 0-255 range (the published Set14 bicubic 26.00 dB counts its one grey
    image that way; through 16-235 luma it would score 1.32 dB higher).
    """
    yp, yt, single = _pair(pred, target, crop_border, grey)
    # Own two lines rather than torchmetrics: it takes the log in float32 (data_range becomes a float32
    # tensor), ~1e-6 dB off the float64 reference; here inf for identical images, as MATLAB gives.
    mse = ((yp - yt) ** 2).mean(dim=(1, 2, 3))
    return _result(10 * torch.log10(255.0**2 / mse), single)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> Tensor:
    """MATLAB fspecial('gaussian', size, sigma): (1, 1, size, size), sums to 1."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)[None, None]


def ssim_y(pred: ImageLike, target: ImageLike, crop_border: int, grey: bool = False) -> float | Tensor:
    """SSIM of the Y channel on the 0-255 scale, as Wang et al.'s reference MATLAB code computes it.

    Not torchmetrics: its SSIM reflect-pads the image and averages the map over the padded border windows
    too, which moves Set5 x4 bicubic SSIM by 1e-3 to 4e-3 per image; the reference filters 'valid'.
    `grey` as in `psnr_y`.
    """
    yp, yt, single = _pair(pred, target, crop_border, grey)
    if min(yp.shape[-2:]) < 11:
        raise ValueError(f"ssim_y: image smaller than the 11x11 window after cropping: {tuple(yp.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    window = _gaussian_window(device=yp.device)

    def filt(x: Tensor) -> Tensor:  # 'valid' filtering, no padding
        return F.conv2d(x, window)

    mu_p, mu_t = filt(yp), filt(yt)
    var_p = filt(yp * yp) - mu_p**2
    var_t = filt(yt * yt) - mu_t**2
    cov = filt(yp * yt) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return _result(ssim_map.mean(dim=(1, 2, 3)), single)


def psnr_rgb(pred: Tensor, target: Tensor) -> Tensor:
    """(b, c, h, w) in [0, 1] -> (b,) PSNR in dB over all values, float64 (inf for identical images). The one
    RGB PSNR of the project: colorization, interpolation and restoration report it on 8-bit quantised images."""
    mse = ((pred.double() - target.double()) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


def ssim_rgb(pred: Tensor, target: Tensor) -> Tensor:
    """(b, 3, h, w) in [0, 1] -> (b,) SSIM per channel (Wang et al.'s settings: Gaussian window, sigma 1.5,
    population covariance), averaged over channels; scikit-image, float64."""
    from skimage.metrics import structural_similarity

    scores = []
    for p, t in zip(pred.detach().double().cpu(), target.detach().double().cpu()):
        scores.append(structural_similarity(t.permute(1, 2, 0).numpy(), p.permute(1, 2, 0).numpy(), data_range=1.0,
                                            channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False))
    return torch.tensor(scores, dtype=torch.float64)
