"""Fidelity of a processed frame to its input's structure: the terms that stop a flicker measure rewarding a
destroyed picture (a black, constant, blurred or temporally averaged result has no flicker at all).

All three work on the BT.601 luma, lightly smoothed first (Gaussian, `sigma` px) so that film grain, which a
restoration may rightly remove, weighs less than the picture's edges; gradients are OpenCV's 3x3 Sobel:

- gradient SSIM: SSIM (Wang et al. 2004, skimage's Gaussian-window form) between the Sobel gradient magnitudes
  of result and input, with the input frame's largest gradient as the data range. It compares where edges are
  and how strong, and ignores a global brightness or contrast-offset change, which is what a deflicker makes
  (the idea of gradient-magnitude similarity, Xue et al. 2014, "GMSD"). A black or blurred frame scores near 0.
- sharpness (Tenengrad, Krotkov 1987): the mean squared gradient magnitude, a no-reference focus measure;
  reported as result / input, so a blurred or flattened result scores well below 1.
- the same gradient SSIM averaged only over pixels where the input moves (its own flow, at least `motion_px`
  per frame): averaging frames over time (mush) leaves static areas intact and smears exactly these.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from restoregan.metrics.temporal import grey


def gradient_magnitude(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Sobel gradient magnitude of the (smoothed) luma of (H, W, 3) float RGB in [0, 1]."""
    lum = grey(rgb)
    if sigma > 0:
        lum = cv2.GaussianBlur(lum, (0, 0), sigma)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def gradient_ssim_map(g_in: np.ndarray, g_out: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM between two gradient-magnitude maps, the input's peak as data range."""
    peak = float(g_in.max())
    if peak <= 0:  # a flat input frame: any flat result matches it, any structure does not
        return np.full(g_in.shape, 1.0 if float(g_out.max()) <= 0 else 0.0, np.float32)
    _, ssim = structural_similarity(g_in, g_out, data_range=peak, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    return ssim.astype(np.float32)


def tenengrad(g: np.ndarray) -> float:
    """Mean squared gradient magnitude (Tenengrad focus measure)."""
    return float(np.mean(np.square(g, dtype=np.float64)))
