"""Interpolation training data: synthetic sequences and windows of real frames, t, augmentations, cuts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interp_utils import clip_with_cut, scene, write_folder, write_video
from restoregan.data.triplet_dataset import SyntheticMotionDataset, VideoWindowDataset
from restoregan.data.video import VideoReadError


def test_synthetic_items_have_shapes_t_and_motion() -> None:
    ds = SyntheticMotionDataset(crop_size=48, windows=(3, 5), train=True, repeat=2)
    ts = set()
    for i in range(30):
        item = ds[i]
        for key in ("frame0", "frame1", "gt"):
            assert item[key].shape == (3, 48, 48) and item[key].dtype == torch.float32
            assert 0 <= item[key].min() and item[key].max() <= 1
        ts.add(round(float(item["t"]), 3))
    assert ts <= {0.25, 0.5, 0.75} and 0.5 in ts and len(ts) > 1
    moved = [float((ds[i]["frame0"] - ds[i]["frame1"]).abs().mean()) for i in range(10)]
    assert np.median(moved) > 0.01  # the frames move


def test_synthetic_validation_is_a_function_of_the_index() -> None:
    a = SyntheticMotionDataset(source="skimage:val", crop_size=32, train=False, repeat=2, seed=3)
    b = SyntheticMotionDataset(source="skimage:val", crop_size=32, train=False, repeat=2, seed=3)
    for i in (0, 3):
        assert torch.equal(a[i]["gt"], b[i]["gt"]) and float(a[i]["t"]) == 0.5


def test_synthetic_frames_depend_only_on_their_time() -> None:
    """A sequence is continuous motion: its view at t = 0.5 is the same whether rendered among 3 or 5 times
    (so windows of any width give exact ground truth for their t), and the ends differ."""
    ds = SyntheticMotionDataset(crop_size=32, train=False, flicker=0, noise=0)
    photo = ds._photo(0)
    five = ds.render(photo, photo, np.array([0.0, 0.25, 0.5, 0.75, 1.0]), np.random.default_rng(0))
    three = ds.render(photo, photo, np.array([0.0, 0.5, 1.0]), np.random.default_rng(0))
    assert np.allclose(three[1], five[2], atol=1e-6) and np.allclose(three[2], five[4], atol=1e-6)
    assert np.abs(five[0] - five[4]).mean() > 1e-3


def _ramp_video(tmp_path: Path, n: int = 9) -> Path:
    """Frame i is a flat grey of level 0.1 + 0.08 i: any in-between frame is the linear blend of its ends."""
    frames = [np.full((40, 40, 3), 0.1 + 0.08 * i, np.float32) for i in range(n)]
    return write_folder(tmp_path / "ramp", frames)


def test_video_windows_give_consistent_t_under_temporal_reversal(tmp_path: Path) -> None:
    ds = VideoWindowDataset([_ramp_video(tmp_path)], crop_size=32, windows=(3, 5), train=True, repeat=5)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        t = float(item["t"])
        seen.add(round(t, 2))
        expected = (1 - t) * item["frame0"] + t * item["frame1"]
        assert torch.allclose(item["gt"], expected, atol=1.5 / 255), (i, t)
    assert {0.25, 0.5, 0.75} <= seen


def test_video_windows_skip_scene_cuts(tmp_path: Path) -> None:
    frames = clip_with_cut(5, 5)  # dark scene, then a bright one from frame 5
    path = write_video(tmp_path / "cut.mp4", frames)
    ds = VideoWindowDataset([path], crop_size=None, windows=(3,), train=False)
    assert len(ds) == 3 + 3  # starts 0..2 and 5..7; 3 and 4 would span the cut
    for i in range(len(ds)):
        item = ds[i]
        levels = [float(item[k].mean()) for k in ("frame0", "gt", "frame1")]
        assert max(levels) < 0.5 or min(levels) > 0.5, f"window {item['name']} mixes the two scenes"


def test_video_windows_errors(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", scene(2))
    with pytest.raises(VideoReadError, match="only 2 frames"):
        VideoWindowDataset([path], crop_size=None, windows=(3,))
    with pytest.raises(VideoReadError, match="smaller than crop 64"):
        VideoWindowDataset([write_video(tmp_path / "small.mp4", scene(4))], crop_size=64)
    with pytest.raises(ValueError, match="at least 3 frames"):
        VideoWindowDataset([path], windows=(2,))


def _photos(folder: Path, sides: list[int]) -> list[Path]:
    """Random-texture 8-bit photos of the given shorter sides (4:3)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, side in enumerate(sides):
        img = rng.integers(0, 256, (side, side * 4 // 3, 3), dtype=np.uint8)
        paths.append(folder / f"p{i:02d}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


def test_optional_photos_are_added_with_their_hold_out_and_small_ones_left_out(tmp_path: Path) -> None:
    need = SyntheticMotionDataset.min_side(32, 4.0, 0.05)
    assert need == 52  # (32 * 1.05 + 2 * 4) / 0.8: the view and its motion at scale 1
    paths = _photos(tmp_path / "extra", [need, need - 1, 80, 90, 100, 110])
    with pytest.warns(UserWarning, match=r"p01\.png: smaller than 52 pixels a side.*left out"):
        ds = SyntheticMotionDataset("skimage", crop_size=32, max_shift=4.0, max_zoom=0.05,
                                    optional_sources=[tmp_path / "extra", tmp_path / "absent"], holdout_every=3,
                                    skip_small=True)
    extra = [p for p in ds.paths if p.parent == tmp_path / "extra"]
    # every 3rd of the folder held out, the first included (p00, p03: the bench's), the one too small (p01) left
    # out, the scikit-image photos kept
    assert [p.name for p in extra] == ["p02.png", "p04.png", "p05.png"]
    assert len(ds.paths) > len(extra)
    item = ds[0]
    assert item["frame0"].shape == (3, 32, 32)
    with pytest.raises(Exception, match=r"p01\.png: image is"):  # without skip_small a photo under 0.6 x crop
        SyntheticMotionDataset([paths[1]], crop_size=96)


def test_photo_cache_keeps_8_bit_photos_as_uint8_and_gives_the_same_floats() -> None:
    from restoregan.data.io import read_image

    ds = SyntheticMotionDataset("skimage", crop_size=32)
    photo = ds._photo(0)
    assert ds._photos[0].dtype == np.uint8  # a quarter of the memory of float32
    assert photo.dtype == np.float32 and np.array_equal(photo, read_image(ds.paths[0]))
