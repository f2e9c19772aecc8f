"""Film-restoration clips: clean clips made from still photos by smooth synthetic motion (or windows of a real
clean video), damaged coherently by `film_damage.damage_sequence`.

A clip is what a camera filming the photo would record: per frame a pan (mostly 0-4 px/frame, sometimes up to
8), a slow zoom, a small rotation, each at constant rate plus a little acceleration, and optionally a foreground
layer (a patch of another photo under a soft elliptical matte) moving 0-6 px/frame over it, occluding and
disoccluding the background. Photos are first shrunk by a clip's `source_scale` (INTER_AREA, so nothing
aliases and flickers), then sampled bilinearly; frames never sample outside the photo: the trajectory is fitted
to it (the shrink lowered, then the motion slowed, as a small photo requires). Photos smaller than the view
plus a 2-pixel margin are refused up front, by name (no upscaling: upscaled targets would teach blur); those
in `optional_sources` folders, and in `held_out_clips`' sources, are left out with a warning naming them (the
ImageNet sample holds a few of 56-100 pixels).

`FilmClipDataset` items: `{"lq": (T, 3, c, c) damaged, "gt": (T, 3, c, c) clean targets, "name": str}`, both
rounded to 8-bit levels; `held_out_clips` yields the deterministic evaluation clips.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from restoregan.data.datasets import HRImageDataset, expand_sources, with_optional
from restoregan.data.film_damage import FilmDamage, damage_sequence
from restoregan.data.film_dataset import clean_reference
from restoregan.data.io import ImageReadError, check_images, compact, list_images, quantize, read_image
from restoregan.data.io import uncompact as _float
from restoregan.data.rng import ProcessRandom
from restoregan.data.triplet_dataset import augment
from restoregan.data.video import SceneCutDetector, VideoReadError, is_video_file, iter_frames, windows_without_cuts

MARGIN = 2  # photo pixels kept clear of the border, so bilinear samples never reach outside
MIN_VIDEO_SIDE = 11  # smallest frame side of a clean video: evaluation scores SSIM with an 11x11 Gaussian window


# --- motion ---------------------------------------------------------------------------------------
@dataclass
class Foreground:
    """A layer over the scene: `patch` (h, w, 3) under matte `alpha` (h, w), its centre at `pos` in output
    pixels at frame 0, moving by `velocity` px/frame and `accel` px/frame^2."""

    patch: np.ndarray
    alpha: np.ndarray
    pos: np.ndarray
    velocity: np.ndarray
    accel: np.ndarray


@dataclass
class Trajectory:
    """One clip's camera: output pixel p of frame k shows the (shrunk) photo at
    centre + velocity k + accel k^2 / 2 + (1 + zoom)^k R(rotation k) (p - view centre), in shrunk-photo pixels.
    `scale`: the photo is shrunk by this factor first (>= 1)."""

    scale: float
    centre: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    accel: np.ndarray = field(default_factory=lambda: np.zeros(2))
    zoom: float = 0.0  # relative change of scale per frame
    rotation: float = 0.0  # degrees per frame
    foreground: Foreground | None = None

    def matrix(self, k: float, h: int, w: int) -> np.ndarray:
        """2x3 map output pixel -> photo point for frame k (for cv2.warpAffine with WARP_INVERSE_MAP)."""
        a = (1 + self.zoom) ** k
        th = math.radians(self.rotation * k)
        c, s = a * math.cos(th), a * math.sin(th)
        ctr = self.centre + self.velocity * k + 0.5 * self.accel * k * k
        cx, cy = (w - 1) / 2, (h - 1) / 2
        return np.array([[c, -s, ctr[0] - c * cx + s * cy], [s, c, ctr[1] - s * cx - c * cy]])

    def extent(self, frames: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) photo x, y reached by the view's corners over `frames` frames."""
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
        pts = np.concatenate([self.matrix(k, h, w) @ corners for k in range(frames)], axis=1)
        return pts.min(axis=1), pts.max(axis=1)


@dataclass
class ClipMotion:
    """How clips move (per frame, in output pixels unless said). The defaults are footage-like: a pan of
    0-`max_pan` px/frame, with probability `fast_prob` up to `max_fast_pan`; acceleration up to `max_accel`
    px/frame^2; zoom within +-`max_zoom` (relative, per frame); rotation within +-`max_rotation` degrees/frame;
    with probability `foreground_prob` a foreground layer 0.25-0.6 of the view's side moving up to `max_fg_speed`;
    the photo shrunk by a factor drawn from `source_scale` (as lower-resolution footage would see it)."""

    max_pan: float = 4.0
    fast_prob: float = 0.15
    max_fast_pan: float = 8.0
    max_accel: float = 0.15
    max_zoom: float = 0.006
    max_rotation: float = 0.15
    foreground_prob: float = 0.6
    max_fg_speed: float = 6.0
    source_scale: Sequence[float] = (1.0, 2.0)

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.source_scale)
        if not 1.0 <= lo <= hi:
            raise ValueError(f"source_scale {list(self.source_scale)}: needs 1 <= lo <= hi (photos are never upscaled)")
        self.source_scale = (lo, hi)

    def draw(self, rng: np.random.Generator, fg_photo: np.ndarray | None, h: int, w: int) -> Trajectory:
        """A random trajectory (its `centre` still to be fitted to the photo, see `fit`)."""
        speed = rng.uniform(0, self.max_fast_pan if rng.random() < self.fast_prob else self.max_pan)
        traj = Trajectory(
            scale=float(rng.uniform(*self.source_scale)),
            centre=np.zeros(2),
            velocity=speed * _direction(rng),
            accel=rng.uniform(0, self.max_accel) * _direction(rng),
            zoom=float(rng.uniform(-self.max_zoom, self.max_zoom)),
            rotation=float(rng.uniform(-self.max_rotation, self.max_rotation)),
        )
        if fg_photo is not None and rng.random() < self.foreground_prob:
            traj.foreground = _foreground(fg_photo, rng, h, w, self.max_fg_speed, self.max_accel)
        return traj


def _direction(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(angle), math.sin(angle)])


def _foreground(photo: np.ndarray, rng: np.random.Generator, h: int, w: int, speed: float, accel: float) -> Foreground:
    ph, pw = photo.shape[:2]
    side = max(4, min(int(rng.uniform(0.25, 0.6) * min(h, w)), ph, pw))
    top, left = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
    patch = np.ascontiguousarray(photo[top : top + side, left : left + side])
    alpha = np.zeros((side, side), np.float32)
    axes = (max(2, int(side / 2 * rng.uniform(0.5, 0.95))), max(2, int(side / 2 * rng.uniform(0.5, 0.95))))
    cv2.ellipse(alpha, (side // 2, side // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    pos = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
    return Foreground(patch, alpha, pos, rng.uniform(0, speed) * _direction(rng), rng.uniform(0, accel) * _direction(rng))


def _shrunk(photo_hw: tuple[int, int], scale: float) -> np.ndarray:
    """(width, height) of the photo shrunk by `scale`, as `render` resizes it."""
    ph, pw = photo_hw
    if scale <= 1.0:
        return np.array([pw, ph], float)
    return np.array([max(1, round(pw / scale)), max(1, round(ph / scale))], float)


def fit(traj: Trajectory, photo_hw: tuple[int, int], frames: int, h: int, w: int, rng: np.random.Generator) -> Trajectory:
    """Place the trajectory inside the photo (at a random position among those that fit): lower the shrink,
    then slow the motion, until every frame's view lies MARGIN pixels inside. The photo must hold the still view
    (`_check_photos`), which always fits."""
    for _ in range(40):
        need = np.subtract(*traj.extent(frames, h, w)[::-1])
        dims = _shrunk(photo_hw, traj.scale)
        if np.all(need <= dims - 1 - 2 * MARGIN):
            break
        if traj.scale > 1.0:  # a larger view of the photo first: the motion stays as drawn
            full = np.array(photo_hw[::-1], float)
            traj.scale = max(1.0, 0.99 * float(np.min(full / (need + 2 + 2 * MARGIN))))
        else:
            traj = replace(traj, velocity=traj.velocity * 0.7, accel=traj.accel * 0.7, zoom=traj.zoom * 0.7,
                           rotation=traj.rotation * 0.7)
    else:
        traj = replace(traj, velocity=np.zeros(2), accel=np.zeros(2), zoom=0.0, rotation=0.0)
    lo, hi = traj.extent(frames, h, w)
    low, high = MARGIN - lo, _shrunk(photo_hw, traj.scale) - 1 - MARGIN - hi  # centres that keep the view inside
    traj.centre = np.array([rng.uniform(a, max(a, b)) for a, b in zip(low, high)])
    return traj


def render(photo: np.ndarray, traj: Trajectory, frames: int, h: int, w: int) -> list[np.ndarray]:
    """The clip's frames: (h, w, 3) float32 in [0, 1]. `photo`: float32 in [0, 1] or uint8 levels (`compact`),
    sampled as it is (an 8-bit photo gives 8-bit frames, as 8-bit footage is)."""
    to_photo = np.array([[1.0, 0.0], [1.0, 0.0]])  # per axis (x, y): shrunk coordinate q -> a q + b in `photo`
    if traj.scale > 1.0:
        photo, to_photo = _shrink_region(photo, traj, frames, h, w)
    fg = traj.foreground
    out = []
    for k in range(frames):
        m = traj.matrix(k, h, w) * to_photo[:, :1]
        m[:, 2] += to_photo[:, 1]
        frame = _float(cv2.warpAffine(photo, m, (w, h),
                                      flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT))
        if fg is not None:
            pos = fg.pos + fg.velocity * k + 0.5 * fg.accel * k * k - (np.array(fg.patch.shape[1::-1]) - 1) / 2
            shift = np.array([[1.0, 0.0, pos[0]], [0.0, 1.0, pos[1]]])
            layer = _float(cv2.warpAffine(fg.patch, shift, (w, h), flags=cv2.INTER_LINEAR))
            alpha = cv2.warpAffine(fg.alpha, shift, (w, h), flags=cv2.INTER_LINEAR)[..., None]
            frame = alpha * layer + (1 - alpha) * frame
        out.append(np.clip(frame, 0, 1).astype(np.float32))
    return out


def _shrink_region(photo: np.ndarray, traj: Trajectory, frames: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of the photo the clip sees (plus a border), shrunk by the trajectory's scale with INTER_AREA,
    and the map from shrunk-photo coordinates into it: shrinking a large photo whole would cost more than the
    rest of the item."""
    full = np.array(photo.shape[1::-1], float)  # (width, height)
    step = full / _shrunk(photo.shape[:2], traj.scale)  # full-resolution pixels per shrunk pixel, per axis
    lo, hi = traj.extent(frames, h, w)
    start = np.clip(np.floor((lo + 0.5) * step - 0.5 - 3 * step), 0, full - 1).astype(int)
    stop = np.clip(np.ceil((hi + 0.5) * step - 0.5 + 3 * step) + 1, start + 1, full).astype(int)
    region = photo[start[1] : stop[1], start[0] : stop[0]]
    size = np.maximum(1, np.round((stop - start) / step)).astype(int)
    region = cv2.resize(region, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA)
    own = (stop - start) / size  # the region's own shrink, within rounding of `step`
    # shrunk q -> full-resolution (q + 0.5) step - 0.5 -> region (x - start + 0.5) / own - 0.5
    return region, np.stack([step / own, (0.5 * step - start) / own - 0.5], axis=1)


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def render_clean_clip(
    photo: np.ndarray,
    fg_photo: np.ndarray | None,
    frames: int,
    size: int | Sequence[int],
    rng: np.random.Generator,
    motion: ClipMotion | None = None,
) -> list[np.ndarray]:
    """A clean clip of `frames` (h, w, 3) float32 frames (size: side or (h, w)) filming `photo`, with
    `fg_photo` (None: no foreground) supplying the moving foreground layer."""
    h, w = _hw(size)
    traj = fit((motion or ClipMotion()).draw(rng, fg_photo, h, w), photo.shape[:2], frames, h, w, rng)
    return render(photo, traj, frames, h, w)


# --- damage --------------------------------------------------------------------------------------
def extra_frames(frames: int, damage: FilmDamage) -> int:
    """Clean frames rendered beyond `frames`, so that dropped frames rarely leave the damaged clip short."""
    drop = min(damage.drop_prob, 0.9)
    return int(math.ceil(2 + 3 * frames * drop / (1 - drop)))


def damage_clip(
    clean: Sequence[np.ndarray], frames: int, rng: np.random.Generator, damage: FilmDamage, grey: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(lq, gt) lists of `frames` 8-bit frames: `clean` greyed (film_dataset.clean_reference), damaged as one
    clip, the first `frames` kept. Should drops still leave it short, its last frame is repeated (as a
    duplicated frame is)."""
    seq = damage_sequence([clean_reference(f, grey) for f in clean], rng, damage)
    lq, gt = seq.frames[:frames], seq.targets[:frames]
    while len(lq) < frames:
        lq, gt = lq + [lq[-1]], gt + [gt[-1]]
    return [quantize(f) for f in lq], [quantize(f) for f in gt]


def _stack(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2))).float()


def _least_side(h: int, w: int) -> tuple[int, int]:
    return h + 2 * MARGIN + 2, w + 2 * MARGIN + 2


def _check_photos(paths: Sequence[Path], h: int, w: int, skip: bool = False) -> list[Path]:
    """Every header read up front; photos that cannot hold the still view are refused by name, or with `skip`
    left out with a warning naming them (folders one merely adds, whose photos vary)."""
    need_h, need_w = _least_side(h, w)
    kept, small = [], []
    for path, info in zip(paths, check_images(paths)):
        if info.height >= need_h and info.width >= need_w:
            kept.append(path)
            continue
        message = (f"{path}: image is {info.height}x{info.width}; clips of {h}x{w} need photos of at least "
                   f"{need_h}x{need_w} (photos are never upscaled)")
        if not skip:
            raise ImageReadError(f"{message}; drop it or lower the crop")
        small.append(message)
    if small:
        more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        warnings.warn(f"{small[0]}{more}: left out of the clips")
    return kept


class _Video:
    """A clean video's frames (8-bit, to halve memory) and the starts of its cut-free windows."""

    def __init__(self, source: str | Path, span: int, max_frames: int | None, detector: SceneCutDetector,
                 crop: tuple[int, int] | None) -> None:
        # each frame is kept as 8 bits as soon as it is decoded and compared with the one before (cuts): float
        # frames of a whole 1080p video would take tens of GB
        self.frames: list[np.ndarray] = []
        self.cuts: list[int] = []
        prev = None
        for frame in iter_frames(source):
            image = frame.image
            if min(image.shape[:2]) < MIN_VIDEO_SIDE:
                h, w = image.shape[:2]
                raise VideoReadError(f"{source}: frames are {w}x{h}; clips need frames of at least "
                                     f"{MIN_VIDEO_SIDE} pixels a side (SSIM's 11x11 Gaussian window)")
            if prev is not None and detector.is_cut(prev, image):
                self.cuts.append(len(self.frames))
            self.frames.append(np.round(image * 255).astype(np.uint8))
            prev = image
            if max_frames is not None and len(self.frames) >= max_frames:
                break
        if len(self.frames) < span:
            n = len(self.frames)
            what = "no frames" if not n else f"only {n} frame{'s' if n > 1 else ''}"
            raise VideoReadError(f"{source}: holds {what}; clips of {span} frames need at least {span}")
        h, w = self.frames[0].shape[:2]
        if crop is not None and (h < crop[0] or w < crop[1]):
            raise VideoReadError(f"{source}: frames are {w}x{h}, smaller than the crop {crop[1]}x{crop[0]}")
        self.name = Path(source).name
        self.starts = windows_without_cuts(len(self.frames), span - 1, self.cuts)

    def run_end(self, first: int) -> int:
        """The frame after the last one of `first`'s shot: the next cut, or the end."""
        return min([len(self.frames)] + [cut for cut in self.cuts if cut > first])

    def window(self, first: int, n: int, top: int, left: int, h: int, w: int) -> list[np.ndarray]:
        return [f[top : top + h, left : left + w].astype(np.float32) / 255 for f in self.frames[first : first + n]]


# --- training / validation -----------------------------------------------------------------------------
class FilmClipDataset(Dataset):
    """Damaged clips and their clean targets for temporal film restoration.

    source: photos as FilmDataset takes them (a folder, a list, "skimage", "skimage:val"; None/[] with
    `videos` only); optional_sources: folders added when present (with_optional); holdout_every / held_out:
    split each folder (colorize_dataset.holdout_split). videos: clean video files or frame folders; an item is
    then a random cut-free window of one of them with probability 1/2 (always, without photos).
    Training items draw from ProcessRandom (augmented: flips, temporal reversal); validation items are a pure
    function of (seed, index) and centre-crop video windows. cache: decoded photos kept per process (8-bit ones as uint8).
    """

    def __init__(
        self,
        source: str | Sequence[str | Path] | None = "skimage",
        damage: FilmDamage | None = None,
        grey: bool = True,
        crop_size: int = 64,
        frames: int = 7,
        train: bool = True,
        optional_sources: Sequence[str | Path] = (),
        videos: Sequence[str | Path] = (),
        holdout_every: int | None = None,
        held_out: bool = False,
        repeat: int = 100,
        seed: int = 0,
        cache: bool = True,
        max_video_frames: int | None = 2000,
        motion: ClipMotion | None = None,
    ) -> None:
        if frames < 1:
            raise ValueError(f"frames={frames}: a clip needs at least one frame")
        if crop_size is None or crop_size < 8:
            raise ValueError(f"crop_size={crop_size}: clips need a crop of at least 8 pixels")
        self.damage, self.grey, self.crop, self.frames = damage or FilmDamage(), grey, int(crop_size), int(frames)
        self.train, self.repeat, self.seed = train, repeat, seed
        self.motion = motion or ClipMotion()
        self.span = self.frames + extra_frames(self.frames, self.damage)
        self.paths: list[Path] = []
        if source not in (None, [], ()):
            named = HRImageDataset._resolve_paths(expand_sources(source, holdout_every, held_out))
            self.paths = _check_photos(named, self.crop, self.crop)
        extra = with_optional([], optional_sources)  # the folders present; absent ones warned about
        if extra:
            added = HRImageDataset._resolve_paths(expand_sources(extra, holdout_every, held_out))
            self.paths += _check_photos(added, self.crop, self.crop, skip=True)
        if isinstance(videos, (str, Path)):
            videos = [videos]
        detector = SceneCutDetector()
        self.videos = [_Video(v, self.frames, max_video_frames, detector, (self.crop, self.crop)) for v in videos]
        self.windows = [(v, s) for v, video in enumerate(self.videos) for s in video.starts]
        if self.videos and not self.windows:
            raise VideoReadError(f"{videos[0]}: no window of {self.frames} frames without a scene cut")
        if not self.paths and not self.windows:
            raise ValueError("FilmClipDataset: no photos and no videos to make clips from")
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._random = ProcessRandom()

    def __len__(self) -> int:
        return (len(self.paths) if self.paths else len(self.windows)) * self.repeat

    def _photo(self, i: int) -> np.ndarray:
        if self._cache is None:
            return compact(read_image(self.paths[i]))  # as cached, so `cache` never changes the data
        if i not in self._cache:
            self._cache[i] = compact(read_image(self.paths[i]))
        return self._cache[i]

    def __getitem__(self, index: int) -> dict:
        rng = self._random.get() if self.train else np.random.default_rng([self.seed, index])
        use_video = bool(self.windows) and (not self.paths or rng.random() < 0.5)
        c = self.crop
        if use_video:
            v, first = self.windows[int(rng.integers(len(self.windows))) if self.train else index % len(self.windows)]
            video = self.videos[v]
            # as many extra frames as the video holds before its next cut (for dropped frames)
            stop = video.run_end(first)
            h, w = video.frames[0].shape[:2]
            top, left = (int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))) if self.train else ((h - c) // 2, (w - c) // 2)
            clean = video.window(first, min(self.span, stop - first), top, left, c, c)
            name = f"{video.name}[{first}:{first + self.frames}]"
        else:
            i = index % len(self.paths)
            fg = self._photo(int(rng.integers(len(self.paths))))
            clean = render_clean_clip(self._photo(i), fg, self.span, c, rng, self.motion)
            name = f"{self.paths[i].name}#{index}"
        if self.train:  # flips and reversal of the CLEAN clip: scratches stay vertical, damage runs forward in time
            clean = augment(clean, rng)
        lq, gt = damage_clip(clean, self.frames, rng, self.damage, self.grey)
        return {"lq": _stack(lq), "gt": _stack(gt), "name": name}


# --- evaluation ------------------------------------------------------------------------------------------
def held_out_clips(
    source: str | Path | Sequence[str | Path] = "skimage:val",
    frames: int = 7,
    size: int | Sequence[int] | None = None,
    seed: int = 0,
    damage: FilmDamage | None = None,
    grey: bool = True,
    video: bool | None = None,
    motion: ClipMotion | None = None,
    max_video_frames: int | None = 2000,
    holdout_every: int | None = None,
) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """The deterministic evaluation clips: (name, lq frames, gt frames), each (h, w, 3) float32 on 8-bit levels.

    Photos (a folder, a list, "skimage:val"): clip i films photo i with rng [seed, i], at full resolution (no
    shrink); size: side or (h, w), None = 3/4 of each side of the photo (a multiple of 8, at least 96);
    holdout_every: only the photos of each folder that FilmClipDataset(holdout_every=N) holds out of training.
    A clean video (`video` None: a video file, or a folder whose images are all named by a number alone, e.g.
    0001.png; True: any folder of frames):
    consecutive windows of `frames` frames, none spanning a scene cut, window j damaged with rng [seed, j];
    size None = whole frames, else a centre crop."""
    damage = damage or FilmDamage()
    motion = replace(motion or ClipMotion(), source_scale=(1.0, 1.0))
    if isinstance(source, (str, Path)) and (video or (video is None and _looks_like_video(Path(source)))):
        yield from _video_clips(Path(source), frames, size, seed, damage, grey, max_video_frames)
        return
    paths = HRImageDataset._resolve_paths(expand_sources(source, holdout_every, held_out=True))
    views = {p: _hw(size) if size is not None else tuple(max(96, int(0.75 * s) // 8 * 8) for s in (i.height, i.width))
             for p, i in zip(paths, check_images(paths))}
    kept = {p for p in paths if _check_photos([p], *views[p], skip=True)}
    if not kept:
        raise ImageReadError(f"{source}: no photo large enough for evaluation clips (see the warnings)")
    for i, path in enumerate(paths):
        if path not in kept:
            continue  # skipped with a warning; the others keep their seeds [seed, i]
        h, w = views[path]
        rng = np.random.default_rng([seed, i])
        photo = compact(read_image(path))  # sampled as training samples it
        others = [p for p in paths[i + 1:] + paths[:i] if p in kept]  # never a photo left out as too small
        fg = compact(read_image(others[0])) if others else photo
        clean = render_clean_clip(photo, fg, frames + extra_frames(frames, damage), (h, w), rng, motion)
        lq, gt = damage_clip(clean, frames, rng, damage, grey)
        yield f"{path.name}", lq, gt


def _looks_like_video(path: Path) -> bool:
    if path.is_file():
        return is_video_file(path)
    if not path.is_dir():
        return False
    return all(p.stem.isdigit() for p in list_images(path))


def _video_clips(source: Path, frames: int, size: int | Sequence[int] | None, seed: int, damage: FilmDamage,
                 grey: bool, max_frames: int | None) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    crop = None if size is None else _hw(size)
    clip = _Video(source, frames, max_frames, SceneCutDetector(), crop)
    h, w = clip.frames[0].shape[:2]
    ch, cw = crop or (h, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    extra = extra_frames(frames, damage)
    starts = windows_without_cuts(len(clip.frames), frames - 1, clip.cuts, step=frames)
    if not starts:
        raise VideoReadError(f"{source}: no window of {frames} frames without a scene cut ({len(clip.cuts)} cuts in "
                             f"{len(clip.frames)} frames); lower task.frames")
    for j, first in enumerate(starts):
        stop = clip.run_end(first)
        clean = clip.window(first, min(frames + extra, stop - first), top, left, ch, cw)
        lq, gt = damage_clip(clean, frames, np.random.default_rng([seed, j]), damage, grey)
        yield f"{clip.name}[{first}:{first + frames}]", lq, gt
