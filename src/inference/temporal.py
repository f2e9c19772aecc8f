"""Temporal consistency for frame-by-frame colorization: motion between frames, scene cuts, chroma
stabilisation and a flicker measure. Frames are luminance (H, W) float32 in [0, 1]; chroma is (2, H, W).

A per-frame colorizer guesses colours independently on every frame, so they flicker. `ChromaStabilizer`
blends each frame's chroma with the previous stabilised chroma warped along the optical flow (OpenCV
Farneback on the luminance), trusting the warp only where the warped luminance matches the frame (occlusions
and new objects keep their own colour) and never across a scene cut.
"""

from __future__ import annotations

import cv2
import numpy as np


class Motion:
    """Dense flow from frame t to frame t-1, with a per-pixel confidence and a scene-cut flag.

    The luminance residual is taken after removing each frame's mean, so old film's global brightness flicker
    is neither a cut nor an occlusion."""

    def __init__(self, prev_lum: np.ndarray, lum: np.ndarray, cut_threshold: float) -> None:
        to8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
        flow = cv2.calcOpticalFlowFarneback(to8(lum), to8(prev_lum), None, 0.5, 3, 21, 3, 5, 1.1, 0)
        h, w = lum.shape
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.map_x, self.map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        warped = self.warp(prev_lum[None])[0]
        residual = np.abs((lum - lum.mean()) - (warped - warped.mean()))
        self.residual = float(residual.mean())
        self.cut = self.residual > cut_threshold
        self.confidence = np.clip(1.0 - residual / 0.1, 0.0, 1.0).astype(np.float32)  # 0 beyond 10% mismatch

    def warp(self, img: np.ndarray) -> np.ndarray:
        """(c, H, W) at frame t-1 -> (c, H, W) aligned with frame t."""
        return np.stack([cv2.remap(ch, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                         for ch in img.astype(np.float32)])


class ChromaStabilizer:
    """stable_t = c_t + strength * confidence * (warp(stable_{t-1}) - c_t): a motion-compensated recursive
    filter; strength 0 = off, towards 1 = colours held longer (at the cost of lag on true colour changes)."""

    def __init__(self, strength: float = 0.7) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"stabilize_strength must lie in [0, 1), got {strength}")
        self.strength = strength
        self.prev: np.ndarray | None = None

    def __call__(self, chroma: np.ndarray, motion: Motion | None) -> np.ndarray:
        if self.prev is None or motion is None or motion.cut:
            stable = chroma
        else:
            stable = chroma + self.strength * motion.confidence * (motion.warp(self.prev) - chroma)
        self.prev = stable.astype(np.float32)
        return self.prev


class FlickerMeter:
    """Mean absolute chroma change between consecutive frames (scene cuts excluded), two ways."""

    DEFINITION = (
        "raw: mean |chroma_t - chroma_(t-1)| over all pixels and both chroma channels (U, V of YUV in 8-bit "
        "levels; a, b for Lab), no motion model; compensated: the same after warping frame t-1 onto t with "
        "Farneback optical flow, weighted by the warp's luminance confidence (the stabiliser uses the same "
        "flow, so this figure favours it; `raw` does not depend on the flow). Pairs across scene cuts are skipped."
    )

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.raw: list[float] = []
        self.compensated: list[float] = []

    def add(self, chroma: np.ndarray, motion: Motion | None) -> None:
        if self.prev is not None and motion is not None and not motion.cut:
            self.raw.append(float(np.abs(chroma - self.prev).mean()))
            diff = np.abs(chroma - motion.warp(self.prev)).mean(axis=0)
            self.compensated.append(float((diff * motion.confidence).sum() / max(motion.confidence.sum(), 1e-6)))
        self.prev = chroma

    def summary(self) -> dict:
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        return {"raw": mean(self.raw), "compensated": mean(self.compensated), "pairs": len(self.raw)}
