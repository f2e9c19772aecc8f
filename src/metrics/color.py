"""Colorization metrics on (H, W, 3) float RGB in [0, 1] numpy images (quantise to 8 bits first, as saved); RGB
PSNR/SSIM are restoregan.metrics.image's.

- `delta_e`: mean CIEDE2000 colour difference (skimage.color), in the CIE's units (~2.3 = just noticeable);
- `colorfulness`: Hasler & Suesstrunk 2003, M = sigma_rgyb + 0.3 mu_rgyb on 0-255 values (0 for grey;
  ~33 "moderately", ~59 "quite", ~82 "highly colourful");
- `FID`: torchmetrics' Frechet Inception Distance over a set, or None plus the reason when its Inception
  weights (torch-fidelity) cannot be had.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab


def delta_e(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean CIEDE2000 difference over all pixels."""
    return float(deltaE_ciede2000(rgb2lab(target), rgb2lab(pred)).mean())


def colorfulness(img: np.ndarray) -> float:
    rgb = img.astype(np.float64) * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


class FID:
    """Frechet Inception Distance between a set of originals and a set of outputs.

    `FID.create()` returns (metric, None) or (None, reason). Few images make FID biased and noisy (it fits
    2048-dimensional Gaussians); compare FIDs only between methods scored on the same set.
    """

    def __init__(self, metric) -> None:
        self.metric = metric

    @classmethod
    def create(cls, device: torch.device) -> tuple[FID | None, str | None]:
        """A cached Inception file that fails its hash check raises WeightsHashError (never loaded); missing
        pieces give (None, reason)."""
        from restoregan.pretrained import FID_INCEPTION_URL, WeightsHashError, verified_weights_file

        try:
            from torchmetrics.image.fid import FrechetInceptionDistance
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

            if not _TORCH_FIDELITY_AVAILABLE:
                raise ModuleNotFoundError("torch-fidelity is not installed")
            # torch-fidelity would fetch it with an unchecked, unpickling torch.hub load; a verified path
            # makes it torch.load the file we checked instead
            weights = verified_weights_file(FID_INCEPTION_URL, "FID Inception", "task.fid",
                                            fallback="or run evaluate.py with task.fid=false")
            metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(weights))
            return cls(metric.to(device)), None
        except WeightsHashError:
            raise
        except Exception as err:  # torch-fidelity missing, or its Inception weights not downloadable
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return None, (
                f"FID needs torchmetrics' Inception network (pip install torch-fidelity; its weights "
                f"pt_inception-2015-12-05 are downloaded to $TORCH_HOME on first use): {reason}"
            )

    def update(self, img: np.ndarray, real: bool) -> None:
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]
        self.metric.update(t.to(self.metric.device), real=real)

    def compute(self) -> float:
        value = float(self.metric.compute())
        self.metric.reset()
        return value
