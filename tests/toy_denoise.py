"""A toy task kept outside the package, as a user's own task would be: Gaussian denoising at 1x. Written only
against restoregan.tasks (one module, plus tests/conf/task/denoise.yaml); tests/test_toy_task.py trains,
evaluates, infers and pipelines it without touching anything under src/, conf/ or the entry scripts."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from restoregan.tasks.base import task_config
from restoregan.tasks.image import ImageToImageTask


class GaussianNoise:
    """The degradation of training pairs: `(clean (H, W, 3), rng) -> noisy`, clipped to [0, 1]."""

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = float(sigma)

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.normal(0.0, self.sigma, clean.shape).astype(np.float32)
        return np.clip(clean + noise, 0.0, 1.0)


class DenoiseTask(ImageToImageTask):
    """`lq` noisy -> `gt` clean, same size; the baseline is the noisy input itself."""

    name = "denoise"
    output_suffix = "_denoised"

    def __init__(self, sigma: float = 0.1, seed: int = 0, scale: int = 1) -> None:
        if scale != 1:  # the generic data configs pass ${task.scale}
            raise ValueError(f"denoising keeps the size: scale must be 1, got {scale}")
        self.sigma, self.seed, self.scale = float(sigma), int(seed), 1

    def config(self) -> dict:
        return task_config(self, sigma=self.sigma)

    def baselines(self, batch: dict) -> dict[str, Tensor]:
        return {"noisy": batch["lq"]}

    def degrade(self, clean: np.ndarray, index: int) -> np.ndarray:
        return GaussianNoise(self.sigma)(clean, np.random.default_rng([self.seed, index]))
