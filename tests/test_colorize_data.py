"""Old-photo damage functions and the colorization dataset (grey inputs, colour targets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restoregan.data import old_photo
from restoregan.data.colorize_dataset import ColorizationDataset, GreyInput, to_grey
from restoregan.data.datasets import skimage_photos
from restoregan.data.io import ImageReadError, read_image

DAMAGES = {
    "fade": {"strength": 0.5},
    "sepia": {"strength": 1.0},
    "grain": {"sigma": 10.0},
    "scratches": {"count": 5},
    "blur": {"sigma": 1.5},
    "jpeg": {"quality": 20},
}


def _photo() -> np.ndarray:
    return read_image(skimage_photos("train")[0])[:96, :96]


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_each_damage_changes_the_image_reproducibly(name: str) -> None:
    img = to_grey(_photo())
    fn = getattr(old_photo, name)
    a = fn(img, np.random.default_rng(3), **DAMAGES[name])
    b = fn(img, np.random.default_rng(3), **DAMAGES[name])
    assert a.shape == img.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b), "same rng seed, same damage"
    assert np.abs(a - img).mean() > 1e-3, f"{name} left the image unchanged"


def test_fade_lowers_contrast_and_sepia_tints() -> None:
    img = to_grey(_photo())
    faded = old_photo.fade(img, np.random.default_rng(0), 0.8)
    assert faded.std() < 0.8 * img.std()
    toned = old_photo.sepia(img, np.random.default_rng(0), 1.0)
    assert (toned[..., 0] >= toned[..., 2]).mean() > 0.99  # red above blue: brown, not grey


def test_grey_input_with_all_damages_stays_grey() -> None:
    always = dict(fade_prob=1, sepia_prob=1, blur_prob=1, grain_prob=1, scratch_prob=1, jpeg_prob=1)
    grey = GreyInput(old_photo.OldPhotoDamage(**always))(_photo(), np.random.default_rng(0))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    assert np.array_equal(np.round(grey * 255), grey * 255)  # 8-bit levels, as a scanned print


def test_dataset_items_are_grey_input_and_colour_target() -> None:
    ds = ColorizationDataset("skimage", crop_size=32, short_side=48, train=True, repeat=2)
    item = ds[0]
    lq, gt = item["lq"], item["gt"]
    assert lq.shape == gt.shape == (3, 32, 32)
    assert torch.equal(lq[0], lq[1]) and torch.equal(lq[1], lq[2])
    assert (gt - gt.mean(0)).abs().max() > 0.05  # the target holds colour
    assert len(ds) == 2 * len(skimage_photos("train"))


def test_short_side_resizes_and_validation_is_deterministic() -> None:
    ds = ColorizationDataset("skimage:val", crop_size=None, short_side=64, train=False)
    item = ds[0]
    assert min(item["gt"].shape[1:]) == 64
    assert torch.equal(ds[1]["lq"], ds[1]["lq"])


def test_best_of_prefers_colourful_crops() -> None:
    colour = lambda t: float((t - t.mean(0, keepdim=True)).abs().mean())  # noqa: E731
    torch.manual_seed(0)
    one = ColorizationDataset(["skimage"], crop_size=32, best_of=1, repeat=1)
    many = ColorizationDataset(["skimage"], crop_size=32, best_of=6, repeat=1)
    mean_one = np.mean([colour(one[i % len(one)]["gt"]) for i in range(21)])
    mean_many = np.mean([colour(many[i % len(many)]["gt"]) for i in range(21)])
    assert mean_many > mean_one


def test_a_non_image_in_the_folder_is_rejected_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageReadError) as info:
        ColorizationDataset(str(tmp_path), crop_size=32)
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)


def _write_photos(folder: Path, count: int) -> list[Path]:
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:02d}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_holdout_split_partitions_each_folder_the_same_way_every_time(tmp_path: Path) -> None:
    paths = _write_photos(tmp_path / "photos", 12)
    train = ColorizationDataset(str(tmp_path / "photos"), crop_size=32, holdout_every=5)
    held = ColorizationDataset(str(tmp_path / "photos"), crop_size=None, train=False, holdout_every=5, held_out=True)
    assert held.names == ["photo_00.png", "photo_05.png", "photo_10.png"]
    assert set(train.names).isdisjoint(held.names)
    assert sorted(train.names + held.names) == sorted(p.name for p in paths)
    # in a list with the scikit-image photos, only the folder is split (skimage keeps its named split)
    mixed = ColorizationDataset(["skimage:val", str(tmp_path / "photos")], crop_size=None, train=False,
                                holdout_every=5, held_out=True)
    assert mixed.names == [p.name for p in skimage_photos("val")] + held.names
    with pytest.raises(ValueError, match="holdout_every"):
        ColorizationDataset(str(tmp_path / "photos"), crop_size=32, holdout_every=1)


def test_short_side_range_draws_training_scales_and_validates_at_the_low_end() -> None:
    ds = ColorizationDataset("skimage:val", crop_size=32, short_side=[40, 80], train=True)
    assert min(ds._decode(0).shape[:2]) == 80  # cached at the largest size
    sides = {min(ds._read(0).shape[:2]) for _ in range(40)}
    assert min(sides) >= 40 and max(sides) <= 80 and len(sides) > 5
    val = ColorizationDataset("skimage:val", crop_size=None, short_side=[40, 80], train=False)
    assert min(val[0]["gt"].shape[1:]) == 40
    with pytest.raises(ValueError, match="short_side"):
        ColorizationDataset("skimage:val", crop_size=32, short_side=[80, 40])


def test_training_crops_stay_upright(tmp_path: Path) -> None:
    """Rows of one colour each (sky above, ground below): a flip keeps every row uniform; a 90-degree rotation
    would turn rows into columns."""
    import cv2

    folder = tmp_path / "rows"
    folder.mkdir()
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :, 2] = np.linspace(0, 255, 64).astype(np.uint8)[:, None]  # red (BGR's last) grows downwards
    cv2.imwrite(str(folder / "rows.png"), img)
    ds = ColorizationDataset(str(folder), crop_size=32, train=True, repeat=20)
    for i in range(20):
        red = ds[i]["gt"][0]
        assert torch.equal(red, red[:, :1].expand_as(red)), "a crop was rotated"
        assert red[-1, 0] > red[0, 0], "a crop was turned upside down"
