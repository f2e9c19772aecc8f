"""Colorization data: colour photos turned into grey inputs on the fly, optionally damaged like old photos.

Sources are HRImageDataset's (a folder, a list of files, "skimage" / "skimage:val", "hf:<dataset>"), with
scale 1; items are `{"lq": (3, H, W) grey (R = G = B), "gt": (3, H, W) the colour original, "name": str}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from restoregan.data.datasets import HRImageDataset, expand_sources, with_optional
from restoregan.data.io import quantize
from restoregan.data.old_photo import OldPhotoDamage

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as color.luminance("yuv")


def to_grey(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, 3) grey with R = G = B = BT.601 luma."""
    return np.repeat((img @ _LUMA)[:, :, None], 3, axis=2).astype(np.float32)


class GreyInput:
    """The degradation of a colorization dataset: drop the colour, then (optionally) age the grey photo; the
    result is re-greyed (sepia toning tints it) and rounded to 8 bits, as a scanned black-and-white print is."""

    def __init__(self, damage: OldPhotoDamage | None = None) -> None:
        self.damage = damage

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        grey = to_grey(img)
        if self.damage is not None:
            grey = to_grey(self.damage(grey, rng))
        return quantize(grey)


class ColorizationDataset(HRImageDataset):
    """short_side: shrink each photo (once, before caching) so its shorter side is this many pixels; colour
    needs context, and a small crop of a large photo shows a patch of texture rather than a scene. A range
    [lo, hi] draws the size of each training item from it (photos are cached at hi): the same object seen at
    several scales, which is what held-out photos are seen at; validation uses lo.
    best_of: draw this many random training crops and keep the most colourful one (the photos hold much sky,
    road and shadow; a chroma-regression model fed mostly those learns to desaturate everything).
    optional_sources: folders added when they exist (see with_optional).
    holdout_every / held_out: hold every N-th photo of each folder out of training (see holdout_split).
    Training crops are flipped left-right but never rotated: colour depends on which way is up (sky above,
    ground below)."""

    def __init__(
        self,
        source: str | Sequence[str | Path],
        crop_size: int | None = None,
        train: bool = True,
        damage: OldPhotoDamage | None = None,
        best_of: int = 1,
        short_side: int | Sequence[int] | None = None,
        optional_sources: Sequence[str | Path] = (),
        holdout_every: int | None = None,
        held_out: bool = False,
        repeat: int = 1,
        seed: int = 0,
        hf_split: str = "train",
        hf_image_column: str = "image",
        cache: bool = False,
    ) -> None:
        if best_of < 1:
            raise ValueError(f"best_of must be >= 1, got {best_of}")
        self.short_range = _short_side_range(short_side)
        lo = None if self.short_range is None else self.short_range[0]
        if lo is not None and crop_size is not None and lo < crop_size:
            raise ValueError(f"short_side {short_side} must be at least crop_size {crop_size}")
        # cached at the largest size; training items are shrunk further per draw
        self.short_side = None if self.short_range is None else self.short_range[1 if train else 0]
        source = with_optional(source, optional_sources)
        super().__init__(
            expand_sources(source, holdout_every, held_out), GreyInput(damage), scale=1, crop_size=crop_size,
            train=train, repeat=repeat, seed=seed, hf_split=hf_split, hf_image_column=hf_image_column, cache=cache,
        )
        self.best_of = best_of if train else 1  # validation items stay a pure function of the index
        if train and crop_size:
            self._augment = A.Compose([A.RandomCrop(crop_size, crop_size), A.HorizontalFlip()])

    def _check_sizes(self) -> None:
        if self.short_side is None:  # photos are resized to short_side >= crop_size otherwise
            super()._check_sizes()

    def whole_min_side(self) -> int:
        return 11  # validation SSIM: scikit-image's 11x11 Gaussian window, no border crop

    def _decode(self, i: int) -> np.ndarray:
        return resize_short_side(super()._decode(i), self.short_side)

    def _read(self, i: int) -> np.ndarray:
        img = super()._read(i)
        if not self.train or self.short_range is None or self.short_range[0] == self.short_range[1]:
            return img
        lo, hi = self.short_range
        return resize_short_side(img, int(self._random.get().integers(lo, hi + 1)))

    def __getitem__(self, index: int) -> dict:
        draw = super().__getitem__  # (zero-argument super() does not work inside a comprehension)
        items = [draw(index) for _ in range(self.best_of)]
        return max(items, key=lambda item: float((item["gt"] - item["gt"].mean(0, keepdim=True)).abs().mean()))


def _short_side_range(short_side: int | Sequence[int] | None) -> tuple[int, int] | None:
    if short_side is None:
        return None
    if isinstance(short_side, (int, np.integer)):
        return int(short_side), int(short_side)
    values = [int(v) for v in short_side]
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ValueError(f"short_side must be a size or a range [lo, hi] with 0 < lo <= hi, got {list(short_side)}")
    return values[0], values[1]


def resize_short_side(img: np.ndarray, short_side: int | None) -> np.ndarray:
    """(H, W, C) image scaled so its shorter side is `short_side` (area filter down, bicubic up); None = as is."""
    h, w = img.shape[:2]
    if short_side is None or min(h, w) == short_side:
        return img
    f = short_side / min(h, w)
    size = (max(short_side, round(w * f)), max(short_side, round(h * f)))  # cv2 takes (w, h)
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(img, size, interpolation=interp), 0, 1)
