"""Old-photo damage for colorization training: pure functions of (image, rng, parameters) plus a pipeline that
draws the parameters. Images are (H, W, 3) float32 RGB in [0, 1]; every function returns a new array.

The damage is applied to the grey input only (the target keeps its clean colours), so the model learns to
colour faded, toned, grainy, scratched and compressed black-and-white photographs and film.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from restoregan.data.degradations import jpeg as jpeg_roundtrip

# Sepia toning (the usual matrix, rows R, G, B of the result); brown shadows, cream highlights.
_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def clip01(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def fade(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Faded print: blacks lifted and whites dulled by up to `strength` (0 = none, 1 = flat grey)."""
    black = strength * rng.uniform(0.2, 0.4)
    white = 1.0 - strength * rng.uniform(0.0, 0.2)
    return clip01(black + (white - black) * img)


def sepia(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Sepia toning blended in with weight `strength` in [0, 1]."""
    toned = img @ _SEPIA.T
    return clip01((1.0 - strength) * img + strength * toned)


def grain(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Film grain: luminance noise of std `sigma` (0-255 units), slightly clumped by a small blur."""
    noise = rng.normal(0.0, 1.0, size=img.shape[:2]).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (3, 3), 0.6)
    noise *= (sigma / 255.0) / max(float(noise.std()), 1e-6)  # the blur lowers the std; restore it
    return clip01(img + noise[:, :, None])


def scratches(img: np.ndarray, rng: np.random.Generator, count: int, max_width: int = 2) -> np.ndarray:
    """`count` bright or dark scratches: long near-vertical lines (film) or short random strokes (prints)."""
    out = img.copy()
    h, w = img.shape[:2]
    for _ in range(count):
        value = float(rng.uniform(0.8, 1.0) if rng.random() < 0.6 else rng.uniform(0.0, 0.2))
        width = int(rng.integers(1, max_width + 1))
        if rng.random() < 0.5:  # vertical film scratch with a slight drift
            x0 = int(rng.integers(w))
            y0, y1 = int(rng.integers(h // 3)), int(h - rng.integers(h // 3))
            pts = [(x0, y0), (int(np.clip(x0 + rng.integers(-3, 4), 0, w - 1)), y1)]
        else:
            pts = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(2)]
        cv2.line(out, pts[0], pts[1], (value, value, value), width, lineType=cv2.LINE_AA)
    return clip01(out)


def blur(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian blur (soft lens, copy generations) with std `sigma` pixels."""
    return clip01(cv2.GaussianBlur(img, (0, 0), sigma)) if sigma > 0 else img.copy()


def jpeg(img: np.ndarray, rng: np.random.Generator, quality: int) -> np.ndarray:
    """JPEG round trip at `quality` (scanned and shared photos)."""
    return jpeg_roundtrip(img, quality)


class OldPhotoDamage:
    """Draws which damages happen (each with its probability) and how strong, then applies them in the order
    a print ages and is digitised: fade, sepia, blur, grain, scratches, JPEG."""

    def __init__(
        self,
        fade_prob: float = 0.3,
        fade_range: Sequence[float] = (0.1, 0.5),
        sepia_prob: float = 0.3,
        sepia_range: Sequence[float] = (0.3, 1.0),
        blur_prob: float = 0.3,
        blur_range: Sequence[float] = (0.3, 1.5),
        grain_prob: float = 0.4,
        grain_range: Sequence[float] = (2.0, 15.0),
        scratch_prob: float = 0.2,
        scratch_count: Sequence[int] = (1, 6),
        jpeg_prob: float = 0.3,
        jpeg_range: Sequence[int] = (40, 95),
    ) -> None:
        self.fade_prob, self.fade_range = fade_prob, tuple(fade_range)
        self.sepia_prob, self.sepia_range = sepia_prob, tuple(sepia_range)
        self.blur_prob, self.blur_range = blur_prob, tuple(blur_range)
        self.grain_prob, self.grain_range = grain_prob, tuple(grain_range)
        self.scratch_prob, self.scratch_count = scratch_prob, tuple(scratch_count)
        self.jpeg_prob, self.jpeg_range = jpeg_prob, tuple(jpeg_range)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.fade_prob:
            img = fade(img, rng, rng.uniform(*self.fade_range))
        if rng.random() < self.sepia_prob:
            img = sepia(img, rng, rng.uniform(*self.sepia_range))
        if rng.random() < self.blur_prob:
            img = blur(img, rng, rng.uniform(*self.blur_range))
        if rng.random() < self.grain_prob:
            img = grain(img, rng, rng.uniform(*self.grain_range))
        if rng.random() < self.scratch_prob:
            img = scratches(img, rng, int(rng.integers(self.scratch_count[0], self.scratch_count[1] + 1)))
        if rng.random() < self.jpeg_prob:
            img = jpeg(img, rng, int(rng.integers(self.jpeg_range[0], self.jpeg_range[1] + 1)))
        return img
