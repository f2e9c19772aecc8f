"""Film-restoration data: clean photos or frames damaged like old film on the fly.

Sources are ColorizationDataset's (a folder, a list of files and folders, "skimage" / "skimage:val",
"hf:<dataset>", plus `optional_sources` used when present); items are
`{"lq": (3, H, W) damaged, "gt": (3, H, W) clean, "name": str}`, both rounded to 8-bit levels as scans are.
With `grey` (archive film is black and white) the clean image is BT.601 grey (R = G = B) before it is
damaged; the damaged input may then carry a sepia tint, which the model learns to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from restoregan.data.colorize_dataset import to_grey
from restoregan.data.datasets import HRImageDataset, expand_sources, with_optional
from restoregan.data.film_damage import FilmDamage
from restoregan.data.io import quantize


def clean_reference(img: np.ndarray, grey: bool) -> np.ndarray:
    """What a model is asked to produce from a photo: its 8-bit grey version (grey film) or the photo."""
    return quantize(to_grey(img) if grey else img)


def damaged_pair(img: np.ndarray, rng: np.random.Generator, damage: FilmDamage, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """(damaged, clean target), both 8-bit: the one recipe for training, validation and evaluate.py."""
    lq, gt = damage.pair(clean_reference(img, grey), rng)
    return quantize(lq), quantize(gt)


class FilmDataset(HRImageDataset):
    """crop_size: training patch side (validation: centre crop, None = whole images). Validation damage is a
    pure function of (seed, index), so every run validates on the same damaged images."""

    def __init__(
        self,
        source: str | Sequence[str | Path],
        damage: FilmDamage | None = None,
        grey: bool = True,
        crop_size: int | None = None,
        train: bool = True,
        optional_sources: Sequence[str | Path] = (),
        repeat: int = 1,
        seed: int = 0,
        hf_split: str = "train",
        hf_image_column: str = "image",
        cache: bool = False,
    ) -> None:
        self.damage, self.grey = damage or FilmDamage(), grey
        source = with_optional(source, optional_sources)
        super().__init__(
            expand_sources(source), self.damage, scale=1, crop_size=crop_size, train=train, repeat=repeat, seed=seed,
            hf_split=hf_split, hf_image_column=hf_image_column, cache=cache,
        )

    def whole_min_side(self) -> int:
        return 11  # validation SSIM: scikit-image's 11x11 Gaussian window, no border crop

    def _pair(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # gate weave moves the target with the damaged frame (FilmDamage.pair)
        return damaged_pair(img, rng, self.damage, self.grey)
