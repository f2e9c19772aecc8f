"""Old-film damage of clean frames: pure functions of (image, rng, parameters), a composer for single frames
(`FilmDamage`) and `damage_sequence` for clips. Images are (H, W, 3) float32 RGB in [0, 1]; every function
returns a new array.

Fade, sepia, grain and blur are `restoregan.data.old_photo`'s. Film adds dust specks (dark: dirt on the print;
bright: dirt on the negative), long vertical scratches that stay at one place for several frames, flicker
(per-frame exposure: brightness and contrast), gate weave (per-frame shift and rotation of the whole picture),
vignetting, and in clips dropped and duplicated frames.

Gate weave moves the picture; a single frame says nothing about where it should have been, so a per-frame
restoration model cannot undo it (that is stabilisation's job). `FilmDamage.pair` therefore returns the clean
frame moved by the same weave as the target: the training pair stays aligned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from restoregan.data.old_photo import blur, clip01, fade, grain, sepia

__all__ = [
    "blur", "fade", "grain", "sepia", "dust", "flicker", "weave", "vignette", "Scratch", "draw_scratches",
    "vertical_scratches", "FilmDamage", "SequenceDamage", "damage_sequence",
]


# --- damages ---------------------------------------------------------------------------------------------
def dust(
    img: np.ndarray, rng: np.random.Generator, count: int, radius: Sequence[float] = (0.6, 3.0), dark_prob: float = 0.6
) -> np.ndarray:
    """`count` specks: small soft-edged blobs, opaque dark (dirt on the print) or bright (dirt on the negative),
    some elongated like fibres."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)  # opacity of the specks
    value = np.zeros((h, w), np.float32)  # their grey level
    for _ in range(count):
        level = rng.uniform(0.0, 0.15) if rng.random() < dark_prob else rng.uniform(0.85, 1.0)
        r = rng.uniform(*radius)
        axes = (max(1, round(r)), max(1, round(r * rng.uniform(0.4, 1.0))))
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        speck = np.zeros((h, w), np.float32)
        cv2.ellipse(speck, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
        speck *= rng.uniform(0.7, 1.0)
        value = np.where(speck > mask, level, value)
        mask = np.maximum(mask, speck)
    mask = cv2.GaussianBlur(mask, (3, 3), 0.5)[:, :, None]  # soft edges, as the optics render them
    return clip01(img * (1 - mask) + value[:, :, None] * mask)


def flicker(img: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float) -> np.ndarray:
    """Per-frame exposure change: contrast about mid-grey, then a brightness offset (both drawn by the caller)."""
    return clip01((img - 0.5) * contrast + 0.5 + brightness)


def weave(img: np.ndarray, rng: np.random.Generator, dx: float, dy: float, angle: float) -> np.ndarray:
    """Gate weave: the picture shifted by (dx, dy) pixels and rotated by `angle` degrees about its centre
    (bilinear, mirrored borders, so no black edges appear)."""
    if dx == 0 and dy == 0 and angle == 0:
        return img.copy()
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return clip01(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))


def vignette(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Corners darkened by up to `strength` (quadratic fall-off from a centre a little off the middle)."""
    h, w = img.shape[:2]
    cy, cx = h / 2 * (1 + rng.uniform(-0.1, 0.1)), w / 2 * (1 + rng.uniform(-0.1, 0.1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2
    return clip01(img * (1 - strength * np.clip(r2 / 2, 0, 1))[:, :, None])


@dataclass
class Scratch:
    """One vertical scratch on the film strip: it runs down the frame at `x` (drifting by `slant` pixels over
    the frame height), `width` pixels wide, blended towards `level` with `opacity`, for `life` more frames."""

    x: float
    width: int
    level: float
    opacity: float
    top: float  # fraction of the height where it starts and ends (most run the whole frame)
    bottom: float
    slant: float
    life: int = 1


def draw_scratches(
    rng: np.random.Generator,
    width: int,
    count: int,
    widths: Sequence[int] = (1, 2),
    opacity: Sequence[float] = (0.3, 0.9),
    life: Sequence[int] = (3, 12),
    bright_prob: float = 0.6,
) -> list[Scratch]:
    """Draw `count` scratches for a frame `width` pixels wide (bright ones are the common base-side kind)."""
    out = []
    for _ in range(count):
        full = rng.random() < 0.7
        out.append(Scratch(
            x=float(rng.uniform(0, width - 1)),
            width=int(rng.integers(widths[0], widths[1] + 1)),
            level=float(rng.uniform(0.85, 1.0) if rng.random() < bright_prob else rng.uniform(0.0, 0.15)),
            opacity=float(rng.uniform(*opacity)),
            top=0.0 if full else float(rng.uniform(0, 0.4)),
            bottom=1.0 if full else float(rng.uniform(0.6, 1.0)),
            slant=float(rng.uniform(-2, 2)),
            life=int(rng.integers(life[0], life[1] + 1)),
        ))
    return out


def vertical_scratches(img: np.ndarray, rng: np.random.Generator, scratches: Sequence[Scratch]) -> np.ndarray:
    """Render `scratches` (from draw_scratches) with a slight per-frame wobble and broken-up intensity."""
    h, w = img.shape[:2]
    out = img.copy()
    for s in scratches:
        mask = np.zeros((h, w), np.float32)
        y0, y1 = int(s.top * (h - 1)), int(s.bottom * (h - 1))
        x0 = s.x + rng.normal(0, 0.3)
        pt0, pt1 = (round(x0), y0), (round(x0 + s.slant * (y1 - y0) / max(h, 1)), y1)
        cv2.line(mask, pt0, pt1, 1.0, s.width, lineType=cv2.LINE_AA)
        # real scratches come and go along their length; a smooth random profile down the frame
        profile = cv2.resize(rng.uniform(0.4, 1.0, (max(2, h // 16), 1)).astype(np.float32), (1, h),
                             interpolation=cv2.INTER_LINEAR)
        alpha = (mask * profile * s.opacity)[:, :, None]
        out = out * (1 - alpha) + s.level * alpha
    return clip01(out)


# --- composition ---------------------------------------------------------------------------------------
@dataclass
class Look:
    """What a clip (or one frame) suffers and how strongly; drawn once per clip by FilmDamage.draw_look."""

    blur: float | None = None
    fade: float | None = None
    fade_rng: int = 0  # seed of fade's own black/white draw, so every frame of a clip fades alike
    vignette: float | None = None
    vignette_rng: int = 0
    grain: float | None = None
    sepia: float | None = None
    dust: bool = False
    scratches: bool = False
    flicker: bool = False
    weave: bool = False


def _pair(name: str, value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"{name}: range [{lo}, {hi}] is reversed")
    return lo, hi


class FilmDamage:
    """Old-film damage with a probability and a range for each kind. These defaults are the one statement of
    the damage's values: training (conf/data/film_damage.yaml names only the class) and evaluate.py
    (restoregan.tasks.restore) both use them. Applied in the order the damage happens: gate weave (camera/projector),
    blur (lens), fade and vignetting, grain, flicker (exposure), dust and scratches (on the print), sepia
    (toning).

    Units: grain std in 8-bit levels; dust density in specks per 10^4 pixels (so a crop and a whole frame look
    alike); scratch widths in pixels, scratch life in frames; flicker brightness as an offset in [0, 1] units
    and contrast as a gain; weave shift in pixels (std of an AR(1) random walk in clips) and rotation in
    degrees; vignette strength as the darkening at the corners.
    """

    def __init__(
        self,
        grain_prob: float = 0.9,
        grain_range: Sequence[float] = (3.0, 12.0),
        dust_prob: float = 0.8,
        dust_density: Sequence[float] = (0.5, 4.0),
        dust_radius: Sequence[float] = (0.6, 3.0),
        dust_dark_prob: float = 0.6,
        scratch_prob: float = 0.5,
        scratch_count: Sequence[int] = (1, 3),
        scratch_width: Sequence[int] = (1, 2),
        scratch_opacity: Sequence[float] = (0.3, 0.9),
        scratch_life: Sequence[int] = (3, 12),
        flicker_prob: float = 0.5,
        flicker_brightness: Sequence[float] = (-0.03, 0.03),
        flicker_contrast: Sequence[float] = (0.94, 1.06),
        weave_prob: float = 0.5,
        weave_shift: float = 1.0,
        weave_rotate: float = 0.2,
        blur_prob: float = 0.3,
        blur_range: Sequence[float] = (0.3, 1.0),
        fade_prob: float = 0.2,
        fade_range: Sequence[float] = (0.05, 0.3),
        sepia_prob: float = 0.2,
        sepia_range: Sequence[float] = (0.2, 0.8),
        vignette_prob: float = 0.3,
        vignette_range: Sequence[float] = (0.05, 0.25),
        drop_prob: float = 0.03,
        duplicate_prob: float = 0.03,
    ) -> None:
        kinds = ("grain", "dust", "scratch", "flicker", "weave", "blur", "fade", "sepia", "vignette", "drop", "duplicate")
        for name in kinds:
            p = locals()[f"{name}_prob"]
            if not 0 <= p <= 1:
                raise ValueError(f"{name}_prob={p}: a probability must lie in [0, 1]")
        self.grain_prob, self.grain_range = grain_prob, _pair("grain_range", grain_range)
        self.dust_prob, self.dust_density = dust_prob, _pair("dust_density", dust_density)
        self.dust_radius, self.dust_dark_prob = _pair("dust_radius", dust_radius), dust_dark_prob
        self.scratch_prob, self.scratch_count = scratch_prob, tuple(int(v) for v in _pair("scratch_count", scratch_count))
        self.scratch_width = tuple(int(v) for v in _pair("scratch_width", scratch_width))
        self.scratch_opacity = _pair("scratch_opacity", scratch_opacity)
        self.scratch_life = tuple(int(v) for v in _pair("scratch_life", scratch_life))
        self.flicker_prob = flicker_prob
        self.flicker_brightness = _pair("flicker_brightness", flicker_brightness)
        self.flicker_contrast = _pair("flicker_contrast", flicker_contrast)
        self.weave_prob, self.weave_shift, self.weave_rotate = weave_prob, float(weave_shift), float(weave_rotate)
        self.blur_prob, self.blur_range = blur_prob, _pair("blur_range", blur_range)
        self.fade_prob, self.fade_range = fade_prob, _pair("fade_range", fade_range)
        self.sepia_prob, self.sepia_range = sepia_prob, _pair("sepia_range", sepia_range)
        self.vignette_prob, self.vignette_range = vignette_prob, _pair("vignette_range", vignette_range)
        self.drop_prob, self.duplicate_prob = drop_prob, duplicate_prob

    # --- what happens -------------------------------------------------------------------------------
    def draw_look(self, rng: np.random.Generator) -> Look:
        """Which damages a clip (or a single frame) suffers, and the strength of those constant over a clip."""
        on = lambda p: bool(rng.random() < p)  # noqa: E731
        return Look(
            blur=rng.uniform(*self.blur_range) if on(self.blur_prob) else None,
            fade=rng.uniform(*self.fade_range) if on(self.fade_prob) else None,
            fade_rng=int(rng.integers(2**31)),
            vignette=rng.uniform(*self.vignette_range) if on(self.vignette_prob) else None,
            vignette_rng=int(rng.integers(2**31)),
            grain=rng.uniform(*self.grain_range) if on(self.grain_prob) else None,
            sepia=rng.uniform(*self.sepia_range) if on(self.sepia_prob) else None,
            dust=on(self.dust_prob),
            scratches=on(self.scratch_prob),
            flicker=on(self.flicker_prob),
            weave=on(self.weave_prob),
        )

    def draw_weave(self, rng: np.random.Generator) -> tuple[float, float, float]:
        """(dx, dy, angle) of one frame, independent of the others."""
        s, a = self.weave_shift, self.weave_rotate
        return float(rng.normal(0, s)), float(rng.normal(0, s)), float(rng.normal(0, a))

    def new_scratches(self, rng: np.random.Generator, width: int) -> list[Scratch]:
        count = int(rng.integers(self.scratch_count[0], self.scratch_count[1] + 1))
        return draw_scratches(rng, width, count, self.scratch_width, self.scratch_opacity, self.scratch_life)

    # --- applying it -------------------------------------------------------------------------------------
    def geometry(
        self, img: np.ndarray, rng: np.random.Generator, look: Look, jitter: tuple[float, float, float] | None
    ) -> np.ndarray:
        """The weave alone: what the clean target of a training pair is moved by."""
        return weave(img, rng, *jitter) if look.weave and jitter is not None else img

    def frame(
        self,
        moved: np.ndarray,
        rng: np.random.Generator,
        look: Look,
        scratches: Sequence[Scratch] = (),
    ) -> np.ndarray:
        """Everything but the weave, on a frame already moved by `geometry`."""
        img = moved
        if look.blur is not None:
            img = blur(img, rng, look.blur)
        if look.fade is not None:
            img = fade(img, np.random.default_rng(look.fade_rng), look.fade)
        if look.vignette is not None:
            img = vignette(img, np.random.default_rng(look.vignette_rng), look.vignette)
        if look.grain is not None:
            img = grain(img, rng, look.grain)
        if look.flicker:
            img = flicker(img, rng, rng.uniform(*self.flicker_brightness), rng.uniform(*self.flicker_contrast))
        if look.dust:
            h, w = img.shape[:2]
            count = rng.poisson(rng.uniform(*self.dust_density) * h * w / 1e4)
            img = dust(img, rng, int(count), self.dust_radius, self.dust_dark_prob)
        if scratches:
            img = vertical_scratches(img, rng, scratches)
        if look.sepia is not None:
            img = sepia(img, rng, look.sepia)
        return img.astype(np.float32) if img is not moved else img.copy()

    def pair(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(damaged, target) for one frame: the target is the clean frame moved by the same gate weave."""
        look = self.draw_look(rng)
        moved = self.geometry(img, rng, look, self.draw_weave(rng) if look.weave else None)
        scratches = self.new_scratches(rng, img.shape[1]) if look.scratches else []
        return self.frame(moved, rng, look, scratches), moved

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One damaged frame."""
        return self.pair(img, rng)[0]


# --- clips ---------------------------------------------------------------------------------------------
@dataclass
class SequenceDamage:
    """A damaged clip. `frames[k]` shows clean frame `source[k]`; `dropped` lists the clean frames that never
    appear, `duplicated` the output positions k that repeat frame k - 1 (an exact copy, as a printer or
    telecine repeats it). `targets[k]` is clean frame source[k] moved by that frame's gate weave."""

    frames: list[np.ndarray]
    targets: list[np.ndarray]
    source: list[int]
    dropped: list[int]
    duplicated: list[int]


def damage_sequence(
    frames: Sequence[np.ndarray],
    rng: np.random.Generator,
    damage: FilmDamage | None = None,
    weave_memory: float = 0.7,
) -> SequenceDamage:
    """Damage a clip coherently: blur, fade, vignette, sepia and grain strength are the clip's; flicker, grain
    and dust are new every frame; scratches persist for their `life` in frames, drifting a little; gate weave
    is an AR(1) random walk (`weave_memory` = correlation between consecutive frames) with the configured std;
    frames are dropped and duplicated with the configured probabilities (never the first frame)."""
    damage = damage or FilmDamage()
    if not frames:
        raise ValueError("damage_sequence: no frames")
    look = damage.draw_look(rng)
    width = frames[0].shape[1]
    source: list[int] = []
    duplicated: list[int] = []
    for i in range(len(frames)):
        if i > 0 and rng.random() < damage.drop_prob:
            continue
        source.append(i)
        if i > 0 and rng.random() < damage.duplicate_prob:
            duplicated.append(len(source))
            source.append(i)
    dropped = sorted(set(range(len(frames))) - set(source))

    out, targets = [], []
    jitter = np.zeros(3)
    active: list[Scratch] = []
    innovation = np.sqrt(1 - weave_memory**2)  # keeps the walk's std at the configured one
    for k, i in enumerate(source):
        if k in duplicated:
            out.append(out[-1].copy())
            targets.append(targets[-1].copy())
            continue
        jitter = weave_memory * jitter + innovation * np.array(damage.draw_weave(rng))
        if look.scratches:
            active = [replace(s, x=float(np.clip(s.x + rng.normal(0, 0.5), 0, width - 1)), life=s.life - 1)
                      for s in active if s.life > 1]
            if not active or rng.random() < 0.2:
                active += damage.new_scratches(rng, width)[: 1 if active else None]
        moved = damage.geometry(frames[i], rng, look, tuple(jitter))
        out.append(damage.frame(moved, rng, look, active))
        targets.append(moved)
    return SequenceDamage(out, targets, source, dropped, duplicated)
