"""Temporal film-restoration clips: shapes, determinism, motion against photo crops, damage that persists,
dropped frames, hold-out split, refusals, and clean-video windows that never span a scene cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from interp_utils import scene, write_folder, write_video
from restoregan.data.clip_dataset import (
    ClipMotion, FilmClipDataset, Trajectory, fit, held_out_clips, render, render_clean_clip,
)
from restoregan.data.film_damage import FilmDamage
from restoregan.data.io import ImageReadError, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
NO_DAMAGE = dict(grain_prob=0, dust_prob=0, scratch_prob=0, flicker_prob=0, weave_prob=0, blur_prob=0, fade_prob=0,
                 sepia_prob=0, vignette_prob=0, drop_prob=0, duplicate_prob=0)


def _photo_folder(folder: Path, n: int, side: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(folder / f"p{i:02d}.png", rng.random((side, side + 10, 3)).astype(np.float32))
    return folder


def _on_8bit_levels(x: torch.Tensor) -> bool:
    return torch.equal(torch.round(x * 255), x * 255) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_items_have_clip_shapes_and_8bit_grey_targets() -> None:
    ds = FilmClipDataset(crop_size=32, frames=5, train=True, repeat=2)
    for i in range(4):
        item = ds[i]
        for key in ("lq", "gt"):
            assert item[key].shape == (5, 3, 32, 32) and item[key].dtype == torch.float32
            assert _on_8bit_levels(item[key])
        assert torch.equal(item["gt"][:, 0], item["gt"][:, 2])  # grey targets: R = G = B
        assert isinstance(item["name"], str)


def test_validation_items_and_held_out_clips_are_functions_of_the_seed() -> None:
    a, b = (FilmClipDataset("skimage:val", crop_size=32, frames=3, train=False, repeat=2, seed=3, cache=c) for c in (True, False))
    other = FilmClipDataset("skimage:val", crop_size=32, frames=3, train=False, repeat=2, seed=4)
    for i in (0, 3):
        assert torch.equal(a[i]["lq"], b[i]["lq"]) and torch.equal(a[i]["gt"], b[i]["gt"])
        assert not torch.equal(a[i]["lq"], other[i]["lq"])
    one, two = (list(held_out_clips("skimage:val", 3, 96, seed=1)) for _ in range(2))
    three = list(held_out_clips("skimage:val", 3, 96, seed=2))
    assert [n for n, _, _ in one] == ["chelsea.png", "coffee.png"]
    for (_, lq1, gt1), (_, lq2, gt2), (_, lq3, _) in zip(one, two, three):
        assert len(lq1) == len(gt1) == 3 and lq1[0].shape == (96, 96, 3) and lq1[0].dtype == np.float32
        assert all(np.array_equal(x, y) for x, y in zip(lq1 + gt1, lq2 + gt2))
        assert not all(np.array_equal(x, y) for x, y in zip(lq1, lq3))
        assert all(np.array_equal(np.round(f * 255), f * 255) for f in lq1 + gt1)


def test_held_out_clips_default_size_is_most_of_the_photo() -> None:
    name, lq, _ = next(iter(held_out_clips("skimage:val", 2)))
    photo = read_image(_skimage("chelsea.png"))
    h, w = lq[0].shape[:2]
    assert h % 8 == 0 and w % 8 == 0 and h >= 96 and w > h  # chelsea is landscape
    assert h >= 0.7 * photo.shape[0] - 8 and w >= 0.7 * photo.shape[1] - 8


def _skimage(name: str) -> Path:
    from restoregan.data.datasets import SKIMAGE_DIR

    return SKIMAGE_DIR / name


def test_clean_clip_moves_smoothly() -> None:
    photo = read_image(_skimage("chelsea.png"))
    for seed in range(4):
        clip = render_clean_clip(photo, photo, 6, 64, np.random.default_rng(seed))
        steps = [float(np.abs(b - a).mean()) for a, b in zip(clip, clip[1:])]
        far = float(np.abs(clip[-1] - clip[0]).mean())
        assert all(s < 0.12 for s in steps), steps  # neighbours alike
        assert max(steps) > 0 or far > 0  # but it moves (a drawn speed of exactly 0 is measure zero)


def test_pure_pan_frames_are_shifted_photo_crops() -> None:
    """Independent reference: with scale 1, no zoom or rotation, frame k is the photo's crop moved by k times
    the velocity (plain array slicing), and frame k + 1 shifted back equals frame k."""
    photo = read_image(_skimage("coffee.png"))
    h, w, x0, y0, v = 40, 48, 100, 120, np.array([3.0, -2.0])
    traj = Trajectory(scale=1.0, centre=np.array([x0 + (w - 1) / 2, y0 + (h - 1) / 2]), velocity=v)
    frames = render(photo, traj, 5, h, w)
    for k, f in enumerate(frames):
        top, left = y0 + int(v[1]) * k, x0 + int(v[0]) * k
        assert np.allclose(f, photo[top : top + h, left : left + w], atol=1e-5)
    for a, b in zip(frames, frames[1:]):  # b(y, x) = a(y + vy, x + vx), in the interior
        assert np.allclose(b[2:-2, 0:-3], a[0:-4, 3:], atol=1 / 255)


def test_fitted_views_stay_inside_small_photos() -> None:
    motion = ClipMotion(max_pan=8, fast_prob=1.0, max_zoom=0.02, max_rotation=1.0)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        ph, pw = 80, 90
        traj = fit(motion.draw(rng, None, 64, 64), (ph, pw), 9, 64, 64, rng)
        lo, hi = traj.extent(9, 64, 64)
        dims = np.array([pw, ph]) / traj.scale if traj.scale > 1 else np.array([pw, ph])
        assert np.all(lo >= 0) and np.all(hi <= dims - 1), (seed, lo, hi)


def test_scratches_persist_across_frames() -> None:
    damage = FilmDamage(**{**NO_DAMAGE, "scratch_prob": 1.0, "scratch_count": (1, 1), "scratch_opacity": (0.9, 0.9),
                           "scratch_life": (20, 20)})
    ds = FilmClipDataset("skimage:val", damage=damage, crop_size=64, frames=5, train=False, repeat=3,
                         motion=ClipMotion(foreground_prob=0))
    for i in range(4):
        item = ds[i]
        diff = (item["lq"] - item["gt"]).abs().mean(dim=(1, 2))  # (T, W): per-frame column profile
        for k in range(4):
            x = int(diff[k].argmax())
            near = diff[k + 1, max(0, x - 2) : x + 3]
            assert float(diff[k, x]) > 0.02 and float(near.max()) > 0.3 * float(diff[k, x]), (i, k, x)


def test_dropped_frames_do_not_shorten_items() -> None:
    damage = FilmDamage(**{**NO_DAMAGE, "drop_prob": 0.5, "duplicate_prob": 0.2})
    ds = FilmClipDataset("skimage:val", damage=damage, crop_size=32, frames=7, train=False, repeat=4)
    for i in range(6):
        assert ds[i]["lq"].shape[0] == 7 and ds[i]["gt"].shape[0] == 7


def test_holdout_split_is_disjoint_and_complete(tmp_path: Path) -> None:
    folder = _photo_folder(tmp_path / "photos", 12, side=72)
    train = FilmClipDataset(str(folder), crop_size=32, frames=2, holdout_every=4, held_out=False)
    held = FilmClipDataset(str(folder), crop_size=32, frames=2, holdout_every=4, held_out=True, train=False)
    a, b = {p.name for p in train.paths}, {p.name for p in held.paths}
    assert not a & b and len(b) == 3 and a | b == {f"p{i:02d}.png" for i in range(12)}
    with pytest.warns(UserWarning, match="optional training photos not found"):
        FilmClipDataset(str(folder), crop_size=32, frames=2, optional_sources=[tmp_path / "absent"])


def test_too_small_photo_is_refused_by_name(tmp_path: Path) -> None:
    folder = _photo_folder(tmp_path / "photos", 2, side=80)
    write_image(folder / "tiny.png", np.zeros((40, 40, 3), np.float32))
    with pytest.raises(ImageReadError) as err:
        FilmClipDataset(str(folder), crop_size=64, frames=3)
    assert "tiny.png" in str(err.value) and "\n" not in str(err.value)


def _cut_folder(tmp_path: Path) -> Path:
    """A dark scene then a bright, different one (a hard cut before frame 6), numbered frames."""
    return write_folder(tmp_path / "cut", scene(6, seed=1, brightness=0.2) + scene(6, seed=2, brightness=0.8))


def _one_scene(gt: torch.Tensor | list) -> bool:
    means = [float(np.asarray(f).mean()) for f in gt]
    return all(m < 0.5 for m in means) or all(m > 0.5 for m in means)


def test_video_windows_never_span_a_scene_cut(tmp_path: Path) -> None:
    folder = _cut_folder(tmp_path)
    damage = FilmDamage(**NO_DAMAGE)
    for train in (True, False):
        ds = FilmClipDataset(None, damage=damage, crop_size=32, frames=3, videos=[folder], train=train, repeat=3)
        assert len(ds) == 3 * 8  # 4 windows of 3 frames on either side of the cut
        for i in range(len(ds)):
            item = ds[i]
            assert item["lq"].shape == (3, 3, 32, 32) and _one_scene(item["gt"]), item["name"]
    clips = list(held_out_clips(folder, 3, None, damage=damage))  # numbered frames: read as a video
    assert [n for n, _, _ in clips] == ["cut[0:3]", "cut[3:6]", "cut[6:9]", "cut[9:12]"]
    assert all(_one_scene(gt) and gt[0].shape == (48, 64, 3) for _, _, gt in clips)


def test_photos_and_a_video_file_mix(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", scene(8, seed=3, brightness=0.5))
    ds = FilmClipDataset("skimage:val", crop_size=32, frames=3, videos=[video], train=False, repeat=8)
    names = [ds[i]["name"] for i in range(len(ds))]
    assert any(n.startswith("clip.mp4[") for n in names) and any(".png#" in n for n in names)
    clips = list(held_out_clips(video, 3, 32, seed=0))
    assert len(clips) == 2 and clips[0][1][0].shape == (32, 32, 3)


def test_conf_builds_the_datasets() -> None:
    data = OmegaConf.load(ROOT / "conf/data/film_clips.yaml")
    cfg = OmegaConf.create({"seed": 0, "data": data})
    cfg.data.train.optional_sources = []  # keep the test offline-fast; the shared folders are tested elsewhere
    train, val = instantiate(cfg.data.train), instantiate(cfg.data.val)
    assert train[0]["lq"].shape == (7, 3, 64, 64) and val[0]["gt"].shape == (7, 3, 96, 96)
    assert cfg.data.batch_size == 4 and cfg.data.train.holdout_every == 10


def test_shrinking_only_the_seen_region_matches_shrinking_the_whole_photo() -> None:
    """The speed-up (shrink the region a clip sees) against the plain reference (shrink the whole photo with
    cv2.resize INTER_AREA, then film it at scale 1 with the same trajectory)."""
    from dataclasses import replace

    import cv2

    photo = read_image(_skimage("coffee.png"))
    motion = ClipMotion(source_scale=(1.3, 2.2), foreground_prob=0)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        traj = fit(motion.draw(rng, None, 48, 48), photo.shape[:2], 6, 48, 48, rng)
        assert traj.scale > 1
        dims = tuple(int(v) for v in np.round(np.array(photo.shape[1::-1]) / traj.scale))
        whole = cv2.resize(photo, dims, interpolation=cv2.INTER_AREA)
        fast = np.stack(render(photo, traj, 6, 48, 48))

        def error(dx: float, dy: float) -> float:
            moved = replace(traj, scale=1.0, centre=traj.centre + np.array([dx, dy]))
            return float(np.abs(fast - np.stack(render(whole, moved, 6, 48, 48))).mean())

        # the two area grids differ in phase by a fraction of a pixel (sharp edges differ a little), but the
        # coordinates agree: any quarter-pixel offset matches worse
        assert error(0, 0) < 1 / 255
        assert all(error(0, 0) < error(dx, dy) for dx, dy in ((0.25, 0), (-0.25, 0), (0, 0.25), (0, -0.25)))
