"""Colorization data: colour photos turned into grey inputs on the fly, optionally damaged like old photos.

Sources are HRImageDataset's (a folder, a list of files, "skimage" / "skimage:val", "hf:<dataset>"), with
scale 1; items are `{"lq": (3, H, W) grey (R = G = B), "gt": (3, H, W) the colour original, "name": str}`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from restoregan.data.datasets import HRImageDataset
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


def expand_sources(source: str | Sequence[str | Path]) -> str | list[Path]:
    """A list may mix folders, "skimage[:split]" and files; HRImageDataset takes one source or a file list."""
    if isinstance(source, (str, Path)):
        return str(source)
    paths: list[Path] = []
    for item in source:
        text = str(item)
        if text.startswith("skimage") or Path(text).is_dir():
            paths += HRImageDataset._resolve_paths(text)
        elif text.startswith("hf:"):
            raise ValueError(f"{text}: a Hugging Face source cannot be combined with others in a list")
        else:
            paths.append(Path(text))
    return paths


def with_optional(source: str | Sequence[str | Path], optional: Sequence[str | Path]) -> str | list:
    """Add the folders of `optional` that exist (e.g. shared data on this machine); absent ones are skipped
    with a warning, so a config that uses them still runs anywhere."""
    present = [str(p) for p in optional if Path(p).is_dir()]
    for p in optional:
        if not Path(p).is_dir():
            warnings.warn(f"{p}: optional training photos not found; training without them")
    if not present:
        return source
    return [*([source] if isinstance(source, (str, Path)) else source), *present]


class ColorizationDataset(HRImageDataset):
    """short_side: shrink each photo (once, before caching) so its shorter side is this many pixels; colour
    needs context, and a small crop of a large photo shows a patch of texture rather than a scene.
    best_of: draw this many random training crops and keep the most colourful one (the photos hold much sky,
    road and shadow; a chroma-regression model fed mostly those learns to desaturate everything).
    optional_sources: folders added when they exist (see with_optional)."""

    def __init__(
        self,
        source: str | Sequence[str | Path],
        crop_size: int | None = None,
        train: bool = True,
        damage: OldPhotoDamage | None = None,
        best_of: int = 1,
        short_side: int | None = None,
        optional_sources: Sequence[str | Path] = (),
        repeat: int = 1,
        seed: int = 0,
        hf_split: str = "train",
        hf_image_column: str = "image",
        cache: bool = False,
    ) -> None:
        if best_of < 1:
            raise ValueError(f"best_of must be >= 1, got {best_of}")
        if short_side is not None and crop_size is not None and short_side < crop_size:
            raise ValueError(f"short_side {short_side} must be at least crop_size {crop_size}")
        self.short_side = short_side
        source = with_optional(source, optional_sources)
        super().__init__(
            expand_sources(source), GreyInput(damage), scale=1, crop_size=crop_size, train=train, repeat=repeat, seed=seed,
            hf_split=hf_split, hf_image_column=hf_image_column, cache=cache,
        )
        self.best_of = best_of if train else 1  # validation items stay a pure function of the index

    def _check_sizes(self) -> None:
        if self.short_side is None:  # photos are resized to short_side >= crop_size otherwise
            super()._check_sizes()

    def _decode(self, i: int) -> np.ndarray:
        img = super()._decode(i)
        h, w = img.shape[:2]
        if self.short_side is None or min(h, w) == self.short_side:
            return img
        f = self.short_side / min(h, w)
        size = (max(self.short_side, round(w * f)), max(self.short_side, round(h * f)))  # cv2 takes (w, h)
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        return np.clip(cv2.resize(img, size, interpolation=interp), 0, 1)

    def __getitem__(self, index: int) -> dict:
        draw = super().__getitem__  # (zero-argument super() does not work inside a comprehension)
        items = [draw(index) for _ in range(self.best_of)]
        return max(items, key=lambda item: float((item["gt"] - item["gt"].mean(0, keepdim=True)).abs().mean()))
