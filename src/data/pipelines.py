"""HR -> LR degradation pipelines: `pipeline(hr, rng) -> lq`, numpy (H, W, 3) float32 in [0, 1].

Each pipeline draws its parameters from the given generator and composes the pure functions of
`restoregan.data.degradations`, so a seed fixes the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from restoregan.data import degradations as D
from restoregan.data.imresize import imresize, output_size, weight_matrix
from restoregan.data.io import quantize

# Sides up to this go through dense matmuls (below); measured by bench/perf_data.py.
DENSE_RESIZE_MAX_SIDE = 256


@lru_cache(maxsize=64)
def _weights32(in_len: int, out_len: int, scale: float) -> np.ndarray:
    return weight_matrix(in_len, out_len, scale).astype(np.float32)


def _imresize_dense(img: np.ndarray, scale: float) -> np.ndarray:
    """`imresize(img, scale)` for a training patch as two small matmuls with imresize's own weights (equal up to
    float32 rounding, ~2e-7). numpy's per-tap loop in imresize pays Python overhead for each of the 4/scale + 2
    taps, which dominates at patch sizes: this is 2-7x faster for 96-256 px (bench/perf_data.py); beyond a
    few hundred pixels the dense matrix's cost (side^3) loses to the tap loop, hence DENSE_RESIZE_MAX_SIDE."""
    h, w = img.shape[:2]
    out_h, out_w, sh, sw = output_size(h, w, scale, None)
    x = img.astype(np.float32, copy=False)
    rows = np.tensordot(_weights32(h, out_h, sh), x, axes=(1, 0))  # (out_h, w, ...)
    out = np.tensordot(rows, _weights32(w, out_w, sw), axes=(1, 1))  # (out_h, ..., out_w)
    return np.moveaxis(out, -1, 1)


class BicubicDegradation:
    """The classical bicubic-downsampling LR (MATLAB `imresize`, antialiased), deterministic.

    `quantize` rounds the LR to 8-bit levels, as the literature's LR PNGs (and any real LR input) are.
    """

    def __init__(self, scale: int, quantize: bool = True) -> None:
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        self.scale, self.quantize = int(scale), bool(quantize)

    def __call__(self, hr: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        small = max(hr.shape[:2]) <= DENSE_RESIZE_MAX_SIDE
        lq = _imresize_dense(hr, 1 / self.scale) if small else imresize(hr, scale=1 / self.scale)
        return quantize(lq) if self.quantize else np.clip(lq, 0.0, 1.0)


def _pair(values: Sequence[float]) -> tuple[float, float]:
    # Hydra hands lists; a fixed-length tuple makes a wrong length fail here, not deep in a draw
    lo, hi = values
    return float(lo), float(hi)


class RealESRGANDegradation:
    """Real-ESRGAN's high-order degradation model (Wang et al. 2021, Sec. 3.1-3.3).

    Stage 1: blur -> random resize -> noise -> JPEG. Stage 2 (if `second_order`): blur (with probability
    `second_blur_prob`) -> random resize relative to the LR size -> noise -> JPEG. Final: resize to exactly
    (H // scale, W // scale) together with a sinc filter (probability `final_sinc_prob`), and JPEG, the two in
    random order. Defaults are those of the paper's RealESRNet/RealESRGAN x4 training configs; names follow
    the BasicSR option names (`*2` for the second stage).
    """

    def __init__(
        self,
        scale: int = 4,
        *,
        # first stage
        kernel_size_range: Sequence[int] = (7, 21),
        kernel_list: Sequence[str] = D.KERNEL_KINDS,
        kernel_prob: Sequence[float] = D.KERNEL_PROBS,
        blur_sigma: Sequence[float] = (0.2, 3.0),
        betag_range: Sequence[float] = (0.5, 4.0),
        betap_range: Sequence[float] = (1.0, 2.0),
        sinc_prob: float = 0.1,
        resize_prob: Sequence[float] = (0.2, 0.7, 0.1),
        resize_range: Sequence[float] = (0.15, 1.5),
        gaussian_noise_prob: float = 0.5,
        noise_range: Sequence[float] = (1.0, 30.0),
        poisson_scale_range: Sequence[float] = (0.05, 3.0),
        gray_noise_prob: float = 0.4,
        jpeg_range: Sequence[float] = (30, 95),
        # second stage
        second_order: bool = True,
        second_blur_prob: float = 0.8,
        kernel_size_range2: Sequence[int] = (7, 21),
        kernel_list2: Sequence[str] = D.KERNEL_KINDS,
        kernel_prob2: Sequence[float] = D.KERNEL_PROBS,
        blur_sigma2: Sequence[float] = (0.2, 1.5),
        betag_range2: Sequence[float] = (0.5, 4.0),
        betap_range2: Sequence[float] = (1.0, 2.0),
        sinc_prob2: float = 0.1,
        resize_prob2: Sequence[float] = (0.3, 0.4, 0.3),
        resize_range2: Sequence[float] = (0.3, 1.2),
        gaussian_noise_prob2: float = 0.5,
        noise_range2: Sequence[float] = (1.0, 25.0),
        poisson_scale_range2: Sequence[float] = (0.05, 2.5),
        gray_noise_prob2: float = 0.4,
        jpeg_range2: Sequence[float] = (30, 95),
        # final stage
        final_sinc_prob: float = 0.8,
        final_kernel_size_range: Sequence[int] = (7, 21),
        final_sinc_cutoff_range: Sequence[float] = (math.pi / 3, math.pi),
        resize_modes: Sequence[str] = D.RESIZE_MODES,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        if len(resize_prob) != 3 or len(resize_prob2) != 3:
            raise ValueError("resize_prob and resize_prob2 hold three probabilities: up, down, keep")
        self.scale = int(scale)
        self.second_order = bool(second_order)
        self.resize_modes = tuple(resize_modes)
        self.stage1 = dict(
            kernel=dict(
                size_range=_pair(kernel_size_range), kinds=tuple(kernel_list), probabilities=tuple(kernel_prob),
                sigma_range=_pair(blur_sigma), beta_gaussian_range=_pair(betag_range),
                beta_plateau_range=_pair(betap_range), sinc_prob=float(sinc_prob),
            ),
            blur_prob=1.0,
            resize=dict(scale_range=_pair(resize_range), probabilities=tuple(resize_prob)),
            noise=dict(
                gaussian_prob=float(gaussian_noise_prob), sigma_range=_pair(noise_range),
                poisson_scale_range=_pair(poisson_scale_range), grey_prob=float(gray_noise_prob),
            ),
            jpeg_range=_pair(jpeg_range),
        )
        self.stage2 = dict(
            kernel=dict(
                size_range=_pair(kernel_size_range2), kinds=tuple(kernel_list2), probabilities=tuple(kernel_prob2),
                sigma_range=_pair(blur_sigma2), beta_gaussian_range=_pair(betag_range2),
                beta_plateau_range=_pair(betap_range2), sinc_prob=float(sinc_prob2),
            ),
            blur_prob=float(second_blur_prob),
            resize=dict(scale_range=_pair(resize_range2), probabilities=tuple(resize_prob2)),
            noise=dict(
                gaussian_prob=float(gaussian_noise_prob2), sigma_range=_pair(noise_range2),
                poisson_scale_range=_pair(poisson_scale_range2), grey_prob=float(gray_noise_prob2),
            ),
            jpeg_range=_pair(jpeg_range2),
        )
        self.final_sinc_prob = float(final_sinc_prob)
        self.final_kernel_size_range = _pair(final_kernel_size_range)
        self.final_sinc_cutoff_range = _pair(final_sinc_cutoff_range)

    def _stage(
        self, img: np.ndarray, rng: np.random.Generator, p: dict, base_size: tuple[int, int] | None
    ) -> np.ndarray:
        if p["blur_prob"] >= 1.0 or rng.uniform() < p["blur_prob"]:
            img = D.filter2d(img, D.random_blur_kernel(rng, **p["kernel"]))
        img = D.random_resize(img, rng, modes=self.resize_modes, base_size=base_size, **p["resize"])
        img = D.random_noise(img, rng, **p["noise"])
        return D.random_jpeg(img, rng, p["jpeg_range"])

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = hr.shape[:2]
        lq_size = (h // self.scale, w // self.scale)
        if min(lq_size) < 1:
            raise ValueError(f"image of size {h}x{w} is smaller than the scale {self.scale}")

        img = self._stage(np.clip(hr, 0.0, 1.0).astype(np.float32), rng, self.stage1, base_size=None)
        if self.second_order:
            # the second stage resizes relative to the LR size, so its range is independent of stage 1's draw
            img = self._stage(img, rng, self.stage2, base_size=lq_size)

        # final sinc: models ringing/overshoot; otherwise a no-op (the paper's pulse kernel)
        sinc = None
        if rng.uniform() < self.final_sinc_prob:
            size = D.random_kernel_size(rng, self.final_kernel_size_range)
            sinc = D.sinc_kernel(size, float(rng.uniform(*self.final_sinc_cutoff_range)))
        mode = self.resize_modes[int(rng.integers(len(self.resize_modes)))]
        jpeg_range = self.stage2["jpeg_range"] if self.second_order else self.stage1["jpeg_range"]
        quality = int(round(rng.uniform(*jpeg_range)))

        def resize_and_sinc(x: np.ndarray) -> np.ndarray:
            x = D.resize(x, lq_size, mode)
            return D.filter2d(x, sinc) if sinc is not None else x

        # random order: JPEG before the final resize gives blockiness smoothed by it, after gives crisp blocks
        if rng.uniform() < 0.5:
            img = D.jpeg(resize_and_sinc(img), quality)
        else:
            img = resize_and_sinc(D.jpeg(img, quality))
        # real LR images are 8-bit; Real-ESRGAN quantises its synthetic ones the same way
        return quantize(img)
