"""Temporal consistency of a processed video relative to its input: the flow-warped frame difference.

For each pair of consecutive input frames (t-1, t) the motion is estimated once, on the INPUT (OpenCV
Farneback on the luminance, both directions), and pixels that fail the forward-backward check are masked as
occluded (Sundaram et al. 2010; the warping error of Lai et al., "Learning Blind Video Temporal Consistency",
ECCV 2018). The same warp is then applied to the input and to the result:

    warp_error(video) = mean over valid pixels of |video_t - warp(video_(t-1))|, RGB, 8-bit levels

A per-frame model that flickers (colour guesses, restoration that hallucinates differently each frame) raises
the result's figure above the input's: `relative` = result / input > 1 is flicker introduced, < 1 is flicker
removed (old film's own brightness flicker, grain and dust count as inconsistency of the input). Pairs across
a scene cut are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from restoregan.inference.temporal import Motion


def grey(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of (H, W, 3) float RGB in [0, 1]."""
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


@dataclass
class PairWarp:
    """The motion of one input pair: warp frame t-1 onto frame t, and where that warp is valid."""

    motion: Motion  # flow t -> t-1
    valid: np.ndarray  # (H, W) bool: not occluded (forward-backward consistent), inside the frame

    @classmethod
    def between(cls, prev_rgb: np.ndarray, rgb: np.ndarray) -> PairWarp:
        prev_l, cur_l = grey(prev_rgb), grey(rgb)
        back = Motion(prev_l, cur_l, cut_threshold=np.inf)  # t -> t-1
        fwd = Motion(cur_l, prev_l, cut_threshold=np.inf)  # t-1 -> t
        h, w = cur_l.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        fb = np.stack([back.map_x - gx, back.map_y - gy])  # (2, H, W) displacement t -> t-1
        bf = np.stack([fwd.map_x - gx, fwd.map_y - gy])  # t-1 -> t
        bf_at = back.warp(bf)  # the forward flow sampled where each pixel of t lands in t-1
        loop = np.square(fb + bf_at).sum(0)
        # Sundaram et al.'s consistency bound: the round trip returns within 1% of the motion plus half a pixel
        bound = 0.01 * (np.square(fb).sum(0) + np.square(bf_at).sum(0)) + 0.5
        inside = (back.map_x >= 0) & (back.map_x <= w - 1) & (back.map_y >= 0) & (back.map_y <= h - 1)
        return cls(back, (loop <= bound) & inside)

    def moving(self, min_px: float) -> np.ndarray:
        """(H, W) bool: valid pixels whose motion between the two frames is at least `min_px`."""
        h, w = self.valid.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return self.valid & (np.hypot(self.motion.map_x - gx, self.motion.map_y - gy) >= min_px)

    def error(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> float | None:
        """Mean |rgb - warp(prev_rgb)| over valid pixels, 8-bit levels (None when nothing is valid)."""
        if not self.valid.any():
            return None
        warped = self.motion.warp(np.moveaxis(prev_rgb, -1, 0))  # (3, H, W)
        diff = np.abs(np.moveaxis(rgb, -1, 0) - warped).mean(0)
        return float(diff[self.valid].mean() * 255.0)


def resize_to(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A result frame on the input's pixel grid (area averaging when smaller, as an upscaled result is)."""
    if rgb.shape[:2] == shape:
        return rgb
    return cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
