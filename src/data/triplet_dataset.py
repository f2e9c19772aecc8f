"""Training data for frame interpolation: (frame0, frame_t, frame1, t) items.

Items are `{"frame0": (3, h, w), "frame1": (3, h, w), "gt": (3, h, w) the frame at t, "t": () float,
"name": str}`, float32 in [0, 1]. A window of `w` frames (one of `windows`, e.g. 3 = triplets, 5 for t in
{0.25, 0.5, 0.75}) gives frame0 = its first, frame1 = its last and gt = a frame k inside, t = k / (w - 1).

- `SyntheticMotionDataset` (offline default): sequences rendered from still photos (the scikit-image
  ones by default) with random camera motion (pan, zoom, small rotation) and a moving foreground layer that
  occludes and disoccludes the background, optionally greyed, flickering and grainy like old film. Motion is
  continuous, so every t is exact ground truth.
- `VideoWindowDataset`: windows of real frames from video files / frame folders (`restoregan.data.video`),
  windows spanning a scene cut skipped. Frames are decoded once and kept in memory (short clips).
Training augmentations: random crop (same place in every frame), flips, temporal reversal (frame0 <-> frame1,
t -> 1 - t). Validation items are a pure function of (seed, index). Randomness as in `datasets.py`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from restoregan.data.datasets import HRImageDataset, expand_sources, with_optional
from restoregan.data.rng import ProcessRandom
from restoregan.data.io import ImageReadError, check_images, compact, read_image, to_tensor, uncompact
from restoregan.data.video import SceneCutDetector, VideoReadError, read_frames, windows_without_cuts


def _check_windows(windows: Sequence[int]) -> list[int]:
    windows = [int(w) for w in windows]
    if not windows or min(windows) < 3:
        raise ValueError(f"windows {windows}: each window needs at least 3 frames (two ends and one inside)")
    return windows


def _item(frames: list[np.ndarray], k: int, name: str) -> dict:
    """Window frames -> item with gt = frames[k]."""
    return {
        "frame0": to_tensor(frames[0]),
        "frame1": to_tensor(frames[-1]),
        "gt": to_tensor(frames[k]),
        "t": torch.tensor(k / (len(frames) - 1), dtype=torch.float32),
        "name": name,
    }


def augment(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Same flips for every frame; temporal reversal reverses the window (so t -> 1 - t)."""
    if rng.random() < 0.5:
        frames = [f[:, ::-1] for f in frames]
    if rng.random() < 0.5:
        frames = [f[::-1] for f in frames]
    if rng.random() < 0.5:
        frames = frames[::-1]
    return [np.ascontiguousarray(f) for f in frames]


class SyntheticMotionDataset(Dataset):
    """Sequences rendered from photos with random camera and object motion (see module docstring).

    Motion per unit time (frame0 -> frame1), in output pixels: camera shift up to `max_shift`, zoom up to
    `max_zoom` (relative), rotation up to `max_rotation` degrees, foreground shift up to `max_fg_shift`.
    `source_scale`: the photo is viewed at 1/s for s in this range, as lower-resolution footage would be.
    Old-film look, per sequence with probability `grey_prob` grey; per frame a brightness gain within
    +-`flicker` and Gaussian grain with sigma up to `noise`.
    `optional_sources`: folders added when they exist (e.g. ../shared/data's photos); `holdout_every`: every N-th
    photo of each folder left out (the bench scores on those); `skip_small`: photos too small to be filmed at their
    own resolution or finer (`min_side`) are left out with a warning instead of being magnified.
    """

    def __init__(
        self,
        source: str | Sequence[str | Path] = "skimage",
        crop_size: int = 64,
        windows: Sequence[int] = (3,),
        train: bool = True,
        repeat: int = 100,
        seed: int = 0,
        max_shift: float = 20.0,
        max_zoom: float = 0.08,
        max_rotation: float = 3.0,
        max_fg_shift: float = 24.0,
        foreground_prob: float = 0.7,
        source_scale: Sequence[float] = (1.0, 2.5),
        grey_prob: float = 0.5,
        flicker: float = 0.05,
        noise: float = 0.03,
        optional_sources: Sequence[str | Path] = (),
        holdout_every: int | None = None,
        skip_small: bool = False,
    ) -> None:
        expanded = source
        if optional_sources or holdout_every is not None:
            expanded = expand_sources(with_optional(source, optional_sources), holdout_every)
        self.paths = HRImageDataset._resolve_paths(expanded)
        self.crop_size, self.windows = crop_size, _check_windows(windows)
        # every header read up front (truncated, animated, over the pixel cap: refused here, by name); the moving
        # foreground is a patch of up to 0.6 x crop_size cut from a photo, so each must be at least that large
        least = int(0.6 * crop_size)
        small = []
        for path, info in zip(list(self.paths), check_images(self.paths)):
            side = min(info.height, info.width)
            if skip_small and side < self.min_side(crop_size, max_shift, max_zoom):
                small.append(path)
            elif side < least:
                raise ImageReadError(f"{path}: image is {info.height}x{info.width}; motion sequences at crop_size "
                                     f"{crop_size} need photos of at least {least} pixels a side")
        if small:
            left_out = set(small)
            self.paths = [q for q in self.paths if q not in left_out]
            more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
            warnings.warn(f"{small[0]}{more}: smaller than {self.min_side(crop_size, max_shift, max_zoom)} pixels a "
                          "side, which a sequence needs to move without magnifying the photo: left out")
            if not self.paths:
                raise ImageReadError(f"{source}: every photo is too small for motion sequences at crop_size "
                                     f"{crop_size}")
        self.train, self.repeat, self.seed = train, repeat, seed
        self.max_shift, self.max_zoom, self.max_rotation = max_shift, max_zoom, math.radians(max_rotation)
        self.max_fg_shift, self.foreground_prob = max_fg_shift, foreground_prob
        self.source_scale = tuple(source_scale)
        self.grey_prob, self.flicker, self.noise = grey_prob, flicker, noise
        self._photos: dict[int, np.ndarray] = {}  # decoded once per process, kept as uint8 when 8-bit (compact)
        self._random = ProcessRandom()

    @staticmethod
    def min_side(crop_size: int, max_shift: float, max_zoom: float) -> int:
        """The shorter side a photo needs so that `render` views it at scale 1 or coarser (never magnified)."""
        return math.ceil((crop_size * (1 + max_zoom) + 2 * max_shift) / 0.8)

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def _photo(self, i: int) -> np.ndarray:
        if i not in self._photos:
            self._photos[i] = compact(read_image(self.paths[i]))
        return uncompact(self._photos[i])

    def __getitem__(self, index: int) -> dict:
        rng = self._random.get() if self.train else np.random.default_rng([self.seed, index])
        i = index % len(self.paths)
        window = int(rng.choice(self.windows))
        times = np.linspace(0.0, 1.0, window)
        frames = self.render(self._photo(i), self._photo(int(rng.integers(len(self.paths)))), times, rng)
        k = int(rng.integers(1, window - 1))
        if self.train:
            frames = augment(frames, rng)
        return _item(frames, k, f"{self.paths[i].name}#{index}")

    def _motion(self, rng: np.random.Generator, limit: float) -> np.ndarray:
        angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0, limit)
        return speed * np.array([math.cos(angle), math.sin(angle)])

    def render(self, photo: np.ndarray, fg_photo: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Frames at `times` in [0, 1] of one random sequence: (size, size, 3) float32 each."""
        size = self.crop_size
        h, w = photo.shape[:2]
        s0 = rng.uniform(*self.source_scale)
        s0 = min(s0, 0.8 * min(h, w) / (size * (1 + self.max_zoom) + 2 * self.max_shift))  # room to move
        velocity = self._motion(rng, self.max_shift)
        zoom, rotation = rng.uniform(-self.max_zoom, self.max_zoom), rng.uniform(-self.max_rotation, self.max_rotation)
        reach = s0 * (size * (1 + self.max_zoom) / math.sqrt(2) * 1.5 + self.max_shift)  # half-extent of what is seen
        centre = np.array([rng.uniform(reach, max(reach, w - reach)), rng.uniform(reach, max(reach, h - reach))])
        fg = self._foreground(fg_photo, rng) if rng.random() < self.foreground_prob else None
        fg_pos = rng.uniform(0.2 * size, 0.8 * size, 2)
        fg_velocity = self._motion(rng, self.max_fg_shift)
        grey = rng.random() < self.grey_prob

        frames = []
        for t in times:
            # output pixel p -> photo point centre(t) + s0 * (1 + zoom t) * R(rotation t) (p - size/2)
            a = s0 * (1 + zoom * t)
            c, s = math.cos(rotation * t) * a, math.sin(rotation * t) * a
            ctr = centre + s0 * velocity * t
            m = np.array([[c, -s, ctr[0] - c * size / 2 + s * size / 2], [s, c, ctr[1] - s * size / 2 - c * size / 2]])
            frame = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
            if fg is not None:
                img, alpha = fg
                pos = fg_pos + fg_velocity * t - np.array(img.shape[1::-1]) / 2
                shift = np.array([[1.0, 0.0, pos[0]], [0.0, 1.0, pos[1]]])
                layer = cv2.warpAffine(img, shift, (size, size), flags=cv2.INTER_LINEAR)
                a_layer = cv2.warpAffine(alpha, shift, (size, size), flags=cv2.INTER_LINEAR)[..., None]
                frame = a_layer * layer + (1 - a_layer) * frame
            if grey:
                frame = np.repeat(frame.mean(axis=-1, keepdims=True), 3, axis=-1)
            frame = frame * rng.uniform(1 - self.flicker, 1 + self.flicker)
            frame = frame + rng.normal(0, rng.uniform(0, self.noise), frame.shape)
            frames.append(np.clip(frame, 0, 1).astype(np.float32))
        return frames

    def _foreground(self, photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random patch of a photo and a soft elliptical alpha matte of the same size."""
        side = int(rng.uniform(0.25, 0.6) * self.crop_size)
        h, w = photo.shape[:2]
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = np.ascontiguousarray(photo[top : top + side, left : left + side])
        alpha = np.zeros((side, side), np.float32)
        axes = (max(2, int(side / 2 * rng.uniform(0.5, 0.95))), max(2, int(side / 2 * rng.uniform(0.5, 0.95))))
        cv2.ellipse(alpha, (side // 2, side // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        return patch, cv2.GaussianBlur(alpha, (3, 3), 0)


class VideoWindowDataset(Dataset):
    """Windows of real frames from videos / frame folders (`sources`), none spanning a scene cut.

    `max_frames` bounds what is decoded per source (frames are kept in memory). Training items pick a random
    valid window and crop; validation items walk the windows in order, centre-cropped (crop_size None = whole).
    """

    def __init__(
        self,
        sources: Sequence[str | Path],
        crop_size: int | None = 256,
        windows: Sequence[int] = (3,),
        train: bool = True,
        repeat: int = 1,
        seed: int = 0,
        max_frames: int | None = 2000,
        scene_cut: SceneCutDetector | None = None,
    ) -> None:
        if isinstance(sources, (str, Path)):
            sources = [sources]
        self.windows, self.crop_size = _check_windows(windows), crop_size
        self.train, self.repeat, self.seed = train, repeat, seed
        detector = scene_cut or SceneCutDetector()
        self.clips: list[tuple[str, list[np.ndarray]]] = []
        self.starts: list[tuple[int, int, int]] = []  # (clip, first frame, window)
        for source in sources:
            frames = [f.image for f in read_frames(source, min_frames=min(self.windows), max_frames=max_frames)]
            if crop_size is not None and min(frames[0].shape[:2]) < crop_size:
                raise VideoReadError(f"{source}: frames are {frames[0].shape[1]}x{frames[0].shape[0]}, smaller than crop {crop_size}")
            cuts = detector.cuts(frames)
            clip = len(self.clips)
            self.clips.append((Path(source).name, frames))
            for window in self.windows:
                self.starts += [(clip, i, window) for i in windows_without_cuts(len(frames), window - 1, cuts)]
        if not self.starts:
            raise VideoReadError(f"{sources[0]}: no window of {self.windows} frames without a scene cut")
        self._random = ProcessRandom()

    def __len__(self) -> int:
        return len(self.starts) * self.repeat

    def __getitem__(self, index: int) -> dict:
        clip, first, window = self.starts[index % len(self.starts)]
        name, frames = self.clips[clip]
        frames = frames[first : first + window]
        rng = self._random.get() if self.train else np.random.default_rng([self.seed, index])
        k = int(rng.integers(1, window - 1)) if self.train else window // 2
        if self.crop_size is not None:
            h, w = frames[0].shape[:2]
            c = self.crop_size
            top, left = (int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))) if self.train else ((h - c) // 2, (w - c) // 2)
            frames = [f[top : top + c, left : left + c] for f in frames]
        if self.train:
            frames = augment(frames, rng)  # a reversed window keeps frames[k] at t = k / (w - 1)
        return _item(frames, k, f"{name}[{first}:{first + window}]")
