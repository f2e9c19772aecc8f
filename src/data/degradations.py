"""Real-ESRGAN degradations as pure functions of (image, rng, parameters).

Written from Wang et al. 2021, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
Data" (Sec. 3). Parameter names and conventions follow the paper / BasicSR option names so that Real-ESRGAN
configs port unchanged; in particular the generalized-Gaussian and plateau shape parameter ``beta`` is the
exponent applied to the quadratic form ``C^T Sigma^-1 C`` (so ``beta = 1`` is the ordinary Gaussian).

Images are numpy ``(H, W, 3)`` float32 RGB in ``[0, 1]``; every function returns that again (clipped).
Randomness comes only from the ``np.random.Generator`` passed in, so a seed fixes the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from scipy import special

KERNEL_KINDS: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
KERNEL_PROBS: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
_CV2_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def _as_image(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------- kernels


def _check_size(size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from the kernel centre: x along columns, y along rows, each (size, size)."""
    _check_size(size)
    ax = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(ax, ax)  # xx varies along columns, yy along rows


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """C^T Sigma^-1 C on the grid, Sigma = R diag(sx^2, sy^2) R^T with R the rotation by theta."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"sigmas must be positive, got {sigma_x}, {sigma_y}")
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # coordinates in the kernel's own (rotated) frame: u along theta, v perpendicular
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def anisotropic_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Bivariate Gaussian; sigma_x is the spread along direction theta (radians, x = columns, y = rows)."""
    return _normalise(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def isotropic_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    return anisotropic_gaussian_kernel(size, sigma, sigma, 0.0)


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """exp(-0.5 (C^T Sigma^-1 C)^beta): beta < 1 heavier tails, beta > 1 flatter top; beta = 1 is Gaussian."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return _normalise(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """1 / (1 + (C^T Sigma^-1 C)^beta): flat top with polynomial tails (the paper's plateau-shaped kernel)."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return _normalise(1.0 / (1.0 + _quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Ideal 2-D circular lowpass with cutoff `cutoff` (radians/pixel, in (0, pi]), truncated to size x size.

    The impulse response of a disk of radius w_c in the frequency plane is w_c J1(w_c r) / (2 pi r) (a jinc);
    its limit at r = 0 is w_c^2 / (4 pi). Not windowed, as in Real-ESRGAN: the truncation ringing is the point.
    """
    if not 0 < cutoff <= math.pi:
        raise ValueError(f"cutoff must lie in (0, pi], got {cutoff}")
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    safe_r = np.where(r == 0, 1.0, r)
    kernel = cutoff * special.j1(cutoff * safe_r) / (2 * math.pi * safe_r)
    kernel = np.where(r == 0, cutoff**2 / (4 * math.pi), kernel)
    return _normalise(kernel)


def random_kernel_size(rng: np.random.Generator, size_range: Sequence[int]) -> int:
    """An odd kernel size drawn uniformly from the odd integers in [min, max]."""
    lo, hi = int(size_range[0]), int(size_range[1])
    choices = [k for k in range(lo, hi + 1) if k % 2 == 1]
    if not choices:
        raise ValueError(f"size_range {size_range} holds no odd size")
    return int(choices[rng.integers(len(choices))])


def _random_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    # Half the draws below 1 and half above (when the range straddles 1), so the Gaussian-like middle of the
    # shape family is not drowned by the wide upper part of the range.
    lo, hi = float(beta_range[0]), float(beta_range[1])
    if lo < 1 < hi:
        return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))
    return float(rng.uniform(lo, hi))


def random_blur_kernel(
    rng: np.random.Generator,
    size_range: Sequence[int] = (7, 21),
    kinds: Sequence[str] = KERNEL_KINDS,
    probabilities: Sequence[float] = KERNEL_PROBS,
    sigma_range: Sequence[float] = (0.2, 3.0),
    beta_gaussian_range: Sequence[float] = (0.5, 4.0),
    beta_plateau_range: Sequence[float] = (1.0, 2.0),
    sinc_prob: float = 0.1,
) -> np.ndarray:
    """Draw one blur kernel as Real-ESRGAN's first/second stage does: a sinc with probability `sinc_prob`,
    otherwise one of `kinds` (iso/aniso Gaussian, generalized Gaussian, plateau) with `probabilities`."""
    if len(kinds) != len(probabilities):
        raise ValueError(f"{len(kinds)} kernel kinds but {len(probabilities)} probabilities")
    size = random_kernel_size(rng, size_range)
    if rng.uniform() < sinc_prob:
        # small kernels cannot represent a low cutoff without heavy truncation, hence the narrower range
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, float(rng.uniform(low, math.pi)))

    probs = np.asarray(probabilities, dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
    family, _, shape = kind.rpartition("_") if "_" in kind else ("gaussian", "", kind)
    if shape not in ("iso", "aniso") or family not in ("gaussian", "generalized", "plateau"):
        raise ValueError(f"unknown kernel kind {kind!r}; expected one of {KERNEL_KINDS}")

    sigma_x = float(rng.uniform(*sigma_range))
    if shape == "iso":
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y = float(rng.uniform(*sigma_range))
        theta = float(rng.uniform(-math.pi, math.pi))
    if family == "gaussian":
        return anisotropic_gaussian_kernel(size, sigma_x, sigma_y, theta)
    if family == "generalized":
        return generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, _random_beta(rng, beta_gaussian_range))
    return plateau_kernel(size, sigma_x, sigma_y, theta, _random_beta(rng, beta_plateau_range))


# ------------------------------------------------------------------------------------------- operations


# cv2.filter2D switches to a DFT for kernels from 13x13 up: about 5 ms on a 256 px RGB patch, most of Real-ESRGAN's
# degradation time. Most of its kernels (isotropic Gaussians, mild anisotropy) are a sum of a few separable ones,
# which cv2.sepFilter2D applies in 0.2-0.6 ms each: 20-40% more patches/s (bench/perf_data.py, before/after).
SEPARABLE_TOL = 1e-5  # L1 norm of the dropped remainder: bounds every output pixel's change (images in [0, 1])


def separable_terms(kernel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(column, row) 1-D kernel pairs whose outer products sum to `kernel` within SEPARABLE_TOL, or None where
    more passes than are cheaper than one 2-D filter would be needed (8 for DFT-sized kernels, else 2)."""
    limit = 8 if min(kernel.shape) >= 13 else 2
    k = kernel.astype(np.float64)
    u, s, vt = np.linalg.svd(k)
    for rank in range(1, min(limit, len(s)) + 1):
        if np.abs(k - (u[:, :rank] * s[:rank]) @ vt[:rank]).sum() <= SEPARABLE_TOL:
            return [((u[:, i] * s[i]).astype(np.float32), vt[i].astype(np.float32)) for i in range(rank)]
    return None


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel with `kernel` (same size out). BORDER_REFLECT_101 mirrors without repeating the
    edge pixel, which is torch's 'reflect' padding used by Real-ESRGAN."""
    src = img.astype(np.float32, copy=False)
    terms = separable_terms(kernel)
    if terms is None:
        out = cv2.filter2D(src, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    else:
        out = sum(cv2.sepFilter2D(src, -1, row, col, borderType=cv2.BORDER_REFLECT_101) for col, row in terms)
    return _as_image(out.reshape(img.shape))  # cv2 drops a trailing channel axis of size 1


def resize(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to size = (h, w) with mode in RESIZE_MODES."""
    if mode not in _CV2_INTERP:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    h, w = max(1, int(size[0])), max(1, int(size[1]))
    out = cv2.resize(img.astype(np.float32, copy=False), (w, h), interpolation=_CV2_INTERP[mode])
    return _as_image(out.reshape(h, w, *img.shape[2:]))  # bicubic overshoots: clip


def random_resize(
    img: np.ndarray,
    rng: np.random.Generator,
    scale_range: Sequence[float] = (0.15, 1.5),
    probabilities: Sequence[float] = (0.2, 0.7, 0.1),
    modes: Sequence[str] = RESIZE_MODES,
    base_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize up / down / keep (chosen with `probabilities`) by a factor uniform in [1, max] or [min, 1],
    with a mode drawn uniformly from `modes`.

    The factor applies to `base_size` (h, w) when given, else to the input size: Real-ESRGAN's second stage
    sizes relative to the final LR size, not the current image.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    direction = int(rng.choice(3, p=probs / probs.sum()))  # 0 up, 1 down, 2 keep
    if direction == 0:
        factor = float(rng.uniform(1.0, scale_range[1]))
    elif direction == 1:
        factor = float(rng.uniform(scale_range[0], 1.0))
    else:
        factor = 1.0
    mode = modes[int(rng.integers(len(modes)))]
    h, w = base_size if base_size is not None else img.shape[:2]
    return resize(img, (int(h * factor), int(w * factor)), mode)


def _grey(img: np.ndarray) -> np.ndarray:
    # ITU-R BT.601 luma, as cv2's RGB2GRAY; keeps a channel axis for broadcasting, (H, W, 1)
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]


def gaussian_noise(img: np.ndarray, rng: np.random.Generator, sigma: float, grey: bool = False) -> np.ndarray:
    """Additive white Gaussian noise with std `sigma` in 0-255 units; `grey` uses one noise map for all
    channels (luminance noise), else independent per channel (colour noise)."""
    shape = (*img.shape[:2], 1) if grey else img.shape
    noise = rng.normal(0.0, sigma / 255.0, size=shape).astype(np.float32)
    return _as_image(img + noise)


def poisson_noise(img: np.ndarray, rng: np.random.Generator, scale: float, grey: bool = False) -> np.ndarray:
    """Shot noise: variance proportional to intensity, amplitude multiplied by `scale`.

    Photon counts are modelled with as many levels as the image holds distinct 8-bit values (rounded up to a
    power of two), as Real-ESRGAN does; `grey` draws the noise on the luminance and adds it to all channels.
    """
    src = _grey(np.clip(img, 0, 1)) if grey else np.clip(img, 0, 1)
    levels = len(np.unique(np.round(src * 255.0)))
    levels = 2.0 ** math.ceil(math.log2(max(levels, 1)))
    noise = (rng.poisson(src * levels) / levels - src).astype(np.float32)
    return _as_image(img + scale * noise)


def random_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    gaussian_prob: float = 0.5,
    sigma_range: Sequence[float] = (1.0, 30.0),
    poisson_scale_range: Sequence[float] = (0.05, 3.0),
    grey_prob: float = 0.4,
) -> np.ndarray:
    """Gaussian noise with probability `gaussian_prob`, else Poisson; grey (luminance) with `grey_prob`."""
    if rng.uniform() < gaussian_prob:
        sigma = float(rng.uniform(*sigma_range))
        return gaussian_noise(img, rng, sigma, grey=bool(rng.uniform() < grey_prob))
    scale = float(rng.uniform(*poisson_scale_range))
    return poisson_noise(img, rng, scale, grey=bool(rng.uniform() < grey_prob))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through an in-memory JPEG at `quality` (1-100); cv2 codes BGR, so swap on the way."""
    q = int(round(quality))
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must lie in [1, 100], got {quality}")
    bgr = np.round(np.clip(img, 0, 1)[..., ::-1] * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write JPEG")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return _as_image(out.astype(np.float32) / 255.0)


def random_jpeg(img: np.ndarray, rng: np.random.Generator, quality_range: Sequence[float] = (30, 95)) -> np.ndarray:
    """JPEG at a quality uniform in `quality_range` (rounded: the codec takes integers)."""
    return jpeg(img, int(round(rng.uniform(*quality_range))))
