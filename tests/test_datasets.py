"""Datasets, data module and data configs: shapes, alignment, determinism, one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate
from PIL import Image

from restoregan.data.datamodule import TrainingDataModule
from restoregan.data.datasets import HRImageDataset, PairedImageDataset, skimage_photos
from restoregan.data.imresize import imresize
from restoregan.data.io import ImageReadError, read_image, to_numpy, write_image
from restoregan.data.pipelines import BicubicDegradation, RealESRGANDegradation

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"


def _photo(path, h: int, w: int, seed: int = 0) -> None:
    write_image(path, np.random.default_rng(seed).random((h, w, 3)))


def test_training_items_are_aligned_crops(tmp_path) -> None:
    _photo(tmp_path / "a.png", 70, 90)
    ds = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32, repeat=3)
    assert len(ds) == 3
    item = ds[0]
    assert item["gt"].shape == (3, 32, 32) and item["lq"].shape == (3, 8, 8) and item["name"] == "a.png"
    # lq is exactly the bicubic degradation of gt: the pair is aligned after crop/flip/rotation.
    expected = np.round(np.clip(imresize(to_numpy(item["gt"]), scale=1 / 4), 0, 1) * 255) / 255  # 8-bit LR
    np.testing.assert_allclose(to_numpy(item["lq"]), expected, atol=1e-6)
    # The crop comes from the image (some 32x32 window, possibly flipped/rotated, of the mod-cropped photo).
    full = read_image(tmp_path / "a.png")[:68, :88]
    gt = to_numpy(item["gt"])
    variants = [np.rot90(v, k) for v in (gt, gt[:, ::-1]) for k in range(4)]
    found = any(
        np.allclose(full[y : y + 32, x : x + 32], v, atol=1e-6)
        for v in variants
        for y in range(68 - 31)
        for x in range(88 - 31)
    )
    assert found


def test_validation_is_deterministic_and_training_random(tmp_path) -> None:
    _photo(tmp_path / "a.png", 64, 64)
    val = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32, train=False)
    assert torch.equal(val[0]["gt"], val[0]["gt"])
    np.testing.assert_allclose(to_numpy(val[0]["gt"]), read_image(tmp_path / "a.png")[16:48, 16:48])
    train = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32, repeat=8)
    crops = {train[i]["gt"].sum().item() for i in range(8)}
    assert len(crops) > 1


def test_hr_not_divisible_by_scale_is_mod_cropped(tmp_path) -> None:
    _photo(tmp_path / "odd.png", 67, 45)
    item = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=None, train=False)[0]
    assert item["gt"].shape == (3, 64, 44) and item["lq"].shape == (3, 16, 11)


def test_grey_rgba_and_16bit_inputs_are_handled(tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(np.full((40, 40, 4), 90, np.uint8), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(tmp_path / "deep.png")
    ds = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32)
    for i in range(3):
        assert ds[i]["gt"].shape == (3, 32, 32)


def test_image_smaller_than_crop_fails_at_start_naming_it(tmp_path) -> None:
    _photo(tmp_path / "big.png", 64, 64)
    _photo(tmp_path / "small.png", 20, 64)
    with pytest.raises(ImageReadError) as err:
        HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32)
    assert str(err.value).startswith(str(tmp_path / "small.png")) and "smaller than the crop" in str(err.value)


def test_optional_folders_hold_out_every_nth_photo_and_skip_small_ones_with_a_warning(tmp_path) -> None:
    """Training on a folder of varied photos: the folder is added only where it exists, every 10th photo of each
    folder (by name, the first included) stays out for benchmarks, and with skip_small a photo smaller than the
    crop is left out by name rather than stopping the run."""
    main, extra = tmp_path / "main", tmp_path / "extra"
    main.mkdir(), extra.mkdir()
    _photo(main / "a.png", 64, 64)  # held out: the first of its folder
    _photo(main / "b.png", 64, 64)
    for i in range(12):
        _photo(extra / f"p{i:02d}.png", 64, 64, seed=i)
    _photo(extra / "p05.png", 20, 64)  # one small photo, not held out (05 % 10 != 0)
    with pytest.warns(UserWarning, match=r"p05\.png: smaller than the crop 32x32"):
        ds = HRImageDataset(main, BicubicDegradation(4), scale=4, crop_size=32, skip_small=True,
                            optional_sources=[extra, tmp_path / "absent"], holdout_every=10)
    assert sorted(ds.names) == ["b.png"] + [f"p{i:02d}.png" for i in range(12) if i not in (0, 5, 10)]
    assert ds[0]["gt"].shape == (3, 32, 32)
    with pytest.raises(ImageReadError, match="p05.png.*smaller than the crop"):  # without skip_small: one line
        HRImageDataset(main, BicubicDegradation(4), scale=4, crop_size=32, optional_sources=[extra])
    hf = tmp_path / "hf"
    hf.mkdir()
    _photo(hf / "h.png", 64, 64)
    with pytest.warns(UserWarning, match="read alone"):  # a Hugging Face dataset is what the user pointed at
        assert len(HRImageDataset(f"hf:{hf}", BicubicDegradation(4), scale=4, crop_size=32,
                                  optional_sources=[extra])) == 1


def test_non_image_file_and_empty_folder_fail_naming_them(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no images found"):
        HRImageDataset(tmp_path / "empty", BicubicDegradation(4), scale=4, crop_size=32)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("not really a png")
    with pytest.raises(ImageReadError, match=f"{bad / 'notes.png'}: not an image"):
        HRImageDataset(bad, BicubicDegradation(4), scale=4, crop_size=32)


def test_paired_dataset_matches_by_stem_and_checks_sizes(tmp_path) -> None:
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr = np.random.default_rng(0).random((66, 50, 3))  # mod-cropped to 64x48
    write_image(hr_dir / "x.png", hr)
    write_image(lr_dir / "x.png", imresize(hr[:64, :48], scale=1 / 4))
    ds = PairedImageDataset(lr_dir, hr_dir, scale=4, crop_size=32)
    item = ds[0]
    assert item["lq"].shape == (3, 8, 8) and item["gt"].shape == (3, 32, 32)
    # Aligned: downscaling the HR crop gives the LR crop up to 8-bit rounding (both were written as PNG).
    expected = imresize(to_numpy(item["gt"]), scale=1 / 4)
    assert np.abs(expected - to_numpy(item["lq"]))[2:-2, 2:-2].mean() < 0.01

    write_image(lr_dir / "x.png", np.zeros((10, 10, 3)))
    with pytest.raises(ImageReadError, match=f"{lr_dir / 'x.png'}: LR is 10x10 .* expected 16x12"):
        PairedImageDataset(lr_dir, hr_dir, scale=4)
    write_image(lr_dir / "x.png", imresize(hr[:64, :48], scale=1 / 4))
    write_image(hr_dir / "y.png", hr)
    with pytest.raises(ImageReadError, match=f"{hr_dir / 'y.png'}: no LR partner"):
        PairedImageDataset(lr_dir, hr_dir, scale=4)


def test_list_source_names_a_missing_file(tmp_path) -> None:
    _photo(tmp_path / "a.png", 40, 40)
    with pytest.raises(ImageReadError, match=f"^{tmp_path / 'gone.png'}: no such file"):
        HRImageDataset([tmp_path / "a.png", tmp_path / "gone.png"], BicubicDegradation(4), scale=4, crop_size=32)
    ds = HRImageDataset([str(tmp_path / "a.png")], BicubicDegradation(4), scale=4, crop_size=32)
    assert ds[0]["gt"].shape == (3, 32, 32)


def test_validation_with_random_degradation_is_seeded_by_index(tmp_path) -> None:
    for i in range(2):
        _photo(tmp_path / f"{i}.png", 64, 64, seed=i)
    make = lambda seed: HRImageDataset(
        tmp_path, RealESRGANDegradation(4), scale=4, crop_size=32, train=False, seed=seed
    )
    a, b = make(0), make(0)  # two instances, as two runs would build them
    assert torch.equal(a[1]["lq"], b[1]["lq"]) and torch.equal(a[0]["lq"], a[0]["lq"])
    assert not torch.equal(a[1]["lq"], make(1)[1]["lq"])  # the seed matters


def test_paired_validation_is_whole_or_centre_crop(tmp_path) -> None:
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr = np.random.default_rng(0).random((64, 48, 3))
    write_image(hr_dir / "x.png", hr)
    write_image(lr_dir / "x.png", imresize(hr, scale=1 / 4))
    whole = PairedImageDataset(lr_dir, hr_dir, scale=4, train=False)[0]
    assert whole["gt"].shape == (3, 64, 48) and whole["lq"].shape == (3, 16, 12) and whole["name"] == "x.png"
    crop = PairedImageDataset(lr_dir, hr_dir, scale=4, crop_size=32, train=False)[0]
    np.testing.assert_array_equal(to_numpy(crop["gt"]), to_numpy(whole["gt"])[16:48, 8:40])
    np.testing.assert_array_equal(to_numpy(crop["lq"]), to_numpy(whole["lq"])[4:12, 2:10])


def test_huggingface_imagefolder_source(tmp_path) -> None:
    import datasets

    folder = tmp_path / "hf" / "train"
    for i in range(2):
        _photo(folder / f"{i}.png", 40, 40, seed=i)
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(folder / "deep.png")  # 16-bit grey
    # what the dataset does for a local folder, done here directly: the images come back in some order
    reference = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hf"), split="train")
    ds = HRImageDataset(f"hf:{tmp_path / 'hf'}", BicubicDegradation(2), scale=2, crop_size=32, train=False)
    assert len(ds) == len(reference) == 3
    for i in range(3):
        item = ds[i]
        assert item["lq"].shape == (3, 16, 16) and item["gt"].shape == (3, 32, 32)
        expected = np.asarray(reference[i]["image"], dtype=np.float32)
        expected = expected / 65535 if expected.ndim == 2 else expected / 255
        expected = expected[4:36, 4:36]
        gt = to_numpy(item["gt"])
        np.testing.assert_allclose(gt, expected if expected.ndim == 3 else np.dstack([expected] * 3), atol=1e-6)
    train = HRImageDataset(f"hf:{tmp_path / 'hf'}", BicubicDegradation(2), scale=2, crop_size=32)
    assert train[0]["gt"].shape == (3, 32, 32)
    small = HRImageDataset(f"hf:{tmp_path / 'hf'}", BicubicDegradation(2), scale=2, crop_size=48)
    with pytest.raises(ImageReadError, match="smaller than the crop"):
        small[0]


def test_skimage_photos_are_colour_and_val_is_held_out() -> None:
    train, val = skimage_photos("train"), skimage_photos("val")
    assert len(train) >= 6 and len(val) >= 2 and not set(train) & set(val)
    assert set(skimage_photos("all")) == set(train) | set(val)
    for path in train + val:
        with Image.open(path) as im:
            assert im.mode == "RGB" and min(im.size) >= 256, path  # real colour, big enough for 256 crops
    with pytest.raises(ValueError, match="split"):
        skimage_photos("test")


def _first_items(dm: TrainingDataModule, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # what seed_everything does for the main process
    return next(iter(dm.train_dataloader()))["gt"]


def test_workers_draw_different_augmentations_reproducibly(tmp_path) -> None:
    _photo(tmp_path / "a.png", 96, 96)
    train = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32, repeat=4)
    dm = TrainingDataModule(train, train, batch_size=2, num_workers=2, persistent_workers=False)
    a, b, c = _first_items(dm, 0), _first_items(dm, 0), _first_items(dm, 1)
    assert torch.equal(a, b)  # same global seed, same batch
    assert not torch.equal(a, c)
    # each worker builds a whole batch; one image repeated, so equal crops would mean equal worker seeds
    torch.manual_seed(0)
    batches = [batch["gt"] for batch in dm.train_dataloader()]
    assert len(batches) == 2 and not torch.equal(batches[0][0], batches[1][0])


def test_datamodule_rejects_a_training_set_smaller_than_a_batch(tmp_path) -> None:
    _photo(tmp_path / "a.png", 40, 40)
    train = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32, repeat=3)
    with pytest.raises(ValueError, match="fewer than batch_size 4"):
        TrainingDataModule(train, train, batch_size=4, num_workers=0)


def _compose_data(name: str, overrides: list[str]):
    # only the data group plus the two keys it reads (task.scale, seed): independent of the rest of train.yaml
    with initialize(config_path="../conf", version_base="1.3"):
        return compose(overrides=[f"+data={name}", "+task.scale=4", "+seed=0", *overrides])


# super-resolution data configs; the other tasks' data (named after them) are tested in
# tests/test_{colorize,interp,restore}_data.py
SR_DATA = sorted(p.stem for p in CONF_DATA.glob("*.yaml") if not p.stem.startswith(("colorize", "interp", "film")))


@pytest.mark.parametrize("name", SR_DATA)
def test_each_data_config_gives_a_batch(name: str, tmp_path) -> None:
    overrides = ["data.crop_size=32", "data.batch_size=2", "data.num_workers=0", "data.val.crop_size=64"]
    if name == "hr_folder":
        for i in range(2):
            _photo(tmp_path / "hr" / f"{i}.png", 48, 48, seed=i)
        overrides.append(f"data.train.source={tmp_path / 'hr'}")
    if name == "paired":
        hr = np.random.default_rng(0).random((48, 48, 3))
        for i in range(2):
            write_image(tmp_path / "HR" / f"{i}.png", hr)
            write_image(tmp_path / "LR" / f"{i}.png", imresize(hr, scale=1 / 4))
        overrides += [f"data.train.lr_dir={tmp_path / 'LR'}", f"data.train.hr_dir={tmp_path / 'HR'}"]
    cfg = _compose_data(name, overrides)
    assert cfg.data._target_ == "restoregan.data.datamodule.TrainingDataModule"
    dm = instantiate(cfg.data)
    assert isinstance(dm, TrainingDataModule) and dm.batch_size == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, 3, 8, 8) and batch["gt"].shape == (2, 3, 32, 32)
    assert torch.isfinite(batch["lq"]).all() and 0 <= batch["lq"].min() and batch["lq"].max() <= 1
    val = next(iter(dm.val_dataloader()))
    assert val["gt"].shape == (1, 3, 64, 64) and val["lq"].shape == (1, 3, 16, 16)
    assert val["name"][0] not in {p.name for p in skimage_photos("train")}  # held out


def test_hydra_degradation_follows_the_task_scale() -> None:
    cfg = _compose_data("realesrgan", ["task.scale=2"])
    assert cfg.data.train.degradation.scale == 2 and cfg.data.val.degradation.scale == 2
    assert cfg.data.train.seed == 0 and cfg.data.train.scale == 2
