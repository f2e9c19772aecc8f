"""Film damage: each kind changes the image and is reproducible by seed, grey stays grey, scratches persist in
clips, dropped/duplicated frames are reported as they happened, the damage values have one source."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ROOT
from restoregan.data.film_damage import (
    FilmDamage, damage_sequence, draw_scratches, dust, flicker, vertical_scratches, vignette, weave,
)
from restoregan.data.old_photo import blur, fade, grain, sepia
from restoregan.tasks.restore import RestorationTask

KINDS = ["grain", "dust", "scratch", "flicker", "weave", "blur", "fade", "sepia", "vignette"]


def _grey_scene(h: int = 64, w: int = 80) -> np.ndarray:
    """A grey gradient with a bright square: texture for blur and weave to move, R = G = B."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.2 + 0.5 * xx / w + 0.1 * np.sin(yy / 3)
    img[20:40, 30:50] = 0.9
    return np.repeat(img[:, :, None], 3, axis=2).astype(np.float32)


def only(kind: str, **extra) -> FilmDamage:
    """FilmDamage with one kind always on and every other off."""
    return FilmDamage(**{f"{k}_prob": float(k == kind) for k in KINDS}, drop_prob=0.0, duplicate_prob=0.0, **extra)


FUNCTIONS = {
    "grain": lambda img, rng: grain(img, rng, 8.0),
    "dust": lambda img, rng: dust(img, rng, 20),
    "scratch": lambda img, rng: vertical_scratches(img, rng, draw_scratches(rng, img.shape[1], 2)),
    "flicker": lambda img, rng: flicker(img, rng, 0.03, 1.05),
    "weave": lambda img, rng: weave(img, rng, 1.5, -0.5, 0.3),
    "blur": lambda img, rng: blur(img, rng, 1.0),
    "fade": lambda img, rng: fade(img, rng, 0.3),
    "sepia": lambda img, rng: sepia(img, rng, 0.8),
    "vignette": lambda img, rng: vignette(img, rng, 0.25),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_damage_changes_the_image_reproducibly(kind: str) -> None:
    img = _grey_scene()
    fn = FUNCTIONS[kind]
    a, b = fn(img, np.random.default_rng(3)), fn(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.abs(a - img).max() > 0.02, f"{kind} left the image as it was"
    assert np.array_equal(a, b), f"{kind}: same seed, different damage"
    # the composer too, with only this kind switched on
    dense = {"dust_density": (40.0, 40.0)} if kind == "dust" else {}  # specks per 10^4 px: some on a small frame
    x, y = only(kind, **dense)(img, np.random.default_rng(5)), only(kind, **dense)(img, np.random.default_rng(5))
    assert np.array_equal(x, y) and np.abs(x - img).max() > 0.02


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "sepia"])
def test_grey_stays_grey(kind: str) -> None:
    img = _grey_scene()
    out = FUNCTIONS[kind](img, np.random.default_rng(0))
    assert np.abs(out - out.mean(axis=2, keepdims=True)).max() < 1e-6, f"{kind} coloured a grey frame"


def test_full_damage_keeps_grey_without_sepia_and_tints_with_it() -> None:
    img = _grey_scene()
    out = FilmDamage(sepia_prob=0.0)(img, np.random.default_rng(1))
    assert np.abs(out - out.mean(axis=2, keepdims=True)).max() < 1e-6
    toned = only("sepia")(img, np.random.default_rng(1))
    assert (toned[..., 0] - toned[..., 2]).mean() > 0.02  # sepia: red above blue


def test_seed_decides_the_damage() -> None:
    img = _grey_scene()
    damage = FilmDamage(grain_prob=1.0, dust_prob=1.0)
    assert np.array_equal(damage(img, np.random.default_rng(7)), damage(img, np.random.default_rng(7)))
    assert not np.array_equal(damage(img, np.random.default_rng(7)), damage(img, np.random.default_rng(8)))


def test_pair_moves_the_target_with_the_weave() -> None:
    """Weave alone: the damaged frame is the target (both moved alike), and the target moved from the clean frame."""
    img = _grey_scene()
    damaged, target = only("weave", weave_shift=2.0).pair(img, np.random.default_rng(0))
    assert np.array_equal(damaged, target)
    assert np.abs(target - img).max() > 0.05
    dmg, tgt = only("dust", dust_density=(40.0, 40.0)).pair(img, np.random.default_rng(0))
    assert np.array_equal(tgt, img) and not np.array_equal(dmg, img)


def _scratch_columns(frame: np.ndarray, base: float) -> set[int]:
    return set(np.flatnonzero(np.abs(frame[..., 0] - base).max(axis=0) > 0.05).tolist())


def _gap(a: set[int], b: set[int]) -> int:
    """Distance in pixels between the nearest scratched columns of two frames."""
    return min(abs(x - y) for x in a for y in b)


def test_scratches_persist_across_a_sequence() -> None:
    """On a flat grey clip with scratches only, a scratch stays within 2 px from frame to frame for its life
    (it drifts by about half a pixel per frame), while independently damaged frames put it anywhere."""
    base = 0.5
    frames = [np.full((48, 96, 3), base, np.float32) for _ in range(8)]
    damage = only("scratch", scratch_life=(6, 6), scratch_count=(1, 1))
    seq = damage_sequence(frames, np.random.default_rng(4), damage)
    cols = [_scratch_columns(f, base) for f in seq.frames]
    assert all(cols), "every frame shows a scratch"
    for a, b in zip(cols[:5], cols[1:6]):  # within the first scratch's life of 6 frames
        assert _gap(a, b) <= 2, f"scratch moved from columns {sorted(a)} to {sorted(b)}"
    singles = [_scratch_columns(damage(frames[0], np.random.default_rng(s)), base) for s in range(6)]
    assert sum(_gap(a, b) > 2 for a, b in zip(singles, singles[1:])) >= 3


def test_dropped_and_duplicated_frames_are_reported() -> None:
    """Frames of distinct constant levels, no other damage: each output frame is the clean frame `source` says,
    duplicates copy the frame before them, dropped frames never appear."""
    n = 40
    frames = [np.full((8, 8, 3), i / 64, np.float32) for i in range(n)]
    damage = FilmDamage(**{f"{k}_prob": 0.0 for k in KINDS}, drop_prob=0.2, duplicate_prob=0.2)
    seq = damage_sequence(frames, np.random.default_rng(0), damage)
    assert seq.dropped and seq.duplicated
    shown = [int(round(f[0, 0, 0] * 64)) for f in seq.frames]
    assert shown == seq.source
    assert sorted(set(range(n)) - set(shown)) == seq.dropped
    assert all(np.array_equal(seq.frames[k], seq.frames[k - 1]) for k in seq.duplicated)
    expected_dups = [k for k in range(1, len(shown)) if shown[k] == shown[k - 1]]
    assert expected_dups == seq.duplicated
    assert len(seq.frames) == len(seq.targets) == n - len(seq.dropped) + len(seq.duplicated)
    again = damage_sequence(frames, np.random.default_rng(0), damage)
    assert again.source == seq.source and all(np.array_equal(a, b) for a, b in zip(again.frames, seq.frames))


def test_weave_is_coherent_over_time() -> None:
    """Gate weave in clips is an AR(1) walk: consecutive frames' shifts correlate (memory 0.7)."""
    img = _grey_scene(64, 64)
    damage = only("weave", weave_shift=2.0, weave_rotate=0.0)
    seq = damage_sequence([img] * 60, np.random.default_rng(2), damage, weave_memory=0.9)
    # the bright square's column centroid follows dx
    xs = np.array([np.average(np.arange(64), weights=(t[..., 0] > 0.8).sum(0) + 1e-9) for t in seq.targets])
    assert np.corrcoef(xs[:-1], xs[1:])[0, 1] > 0.5
    assert all(np.array_equal(f, t) for f, t in zip(seq.frames, seq.targets))  # weave only: target is the frame


# The damage bench/film_restore_quickstart.py's figures were measured with (conf/evaluate.yaml's restore.damage
# before issue 13, then identical to conf/data/film_damage.yaml's): FilmDamage's defaults must stay these values.
BENCH_DAMAGE = {
    "grain_prob": 0.9, "grain_range": [3.0, 12.0], "dust_prob": 0.8, "dust_density": [0.5, 4.0],
    "dust_radius": [0.6, 3.0], "dust_dark_prob": 0.6, "scratch_prob": 0.5, "scratch_count": [1, 3],
    "scratch_width": [1, 2], "scratch_opacity": [0.3, 0.9], "scratch_life": [3, 12], "flicker_prob": 0.5,
    "flicker_brightness": [-0.03, 0.03], "flicker_contrast": [0.94, 1.06], "weave_prob": 0.5, "weave_shift": 1.0,
    "weave_rotate": 0.2, "blur_prob": 0.3, "blur_range": [0.3, 1.0], "fade_prob": 0.2, "fade_range": [0.05, 0.3],
    "sepia_prob": 0.2, "sepia_range": [0.2, 0.8], "vignette_prob": 0.3, "vignette_range": [0.05, 0.25],
    "drop_prob": 0.03, "duplicate_prob": 0.03,
}


def test_one_source_of_the_damage_values() -> None:
    """The class defaults are the values: the training config names the class and repeats none of them, and
    evaluate.py's damage (the restore task's) is built from the same defaults, equal to the benchmark's."""
    data = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/data/film_damage.yaml").train.damage)
    assert data == {"_target_": "restoregan.data.film_damage.FilmDamage"}
    assert "damage" not in OmegaConf.load(ROOT / "conf/evaluate.yaml").get("restore", {})
    defaults = {k: p.default for k, p in inspect.signature(FilmDamage).parameters.items()}
    assert set(defaults) == set(BENCH_DAMAGE)
    for key, value in defaults.items():
        assert (list(value) if isinstance(value, tuple) else value) == BENCH_DAMAGE[key], key
    assert vars(RestorationTask().film_damage()) == vars(FilmDamage(**BENCH_DAMAGE)) == vars(instantiate(data))


def test_reversed_range_and_bad_probability_are_rejected() -> None:
    with pytest.raises(ValueError, match="grain_range"):
        FilmDamage(grain_range=(5, 1))
    with pytest.raises(ValueError, match="dust_prob"):
        FilmDamage(dust_prob=1.5)
