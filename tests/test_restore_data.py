"""FilmDataset: items, grey references, deterministic validation damage, the shared source forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from restoregan.data.film_damage import FilmDamage
from restoregan.data.film_dataset import FilmDataset


def _folder(tmp_path: Path, n: int = 2) -> Path:
    import skimage.data

    folder = tmp_path / "clean"
    folder.mkdir()
    for i, img in enumerate([skimage.data.astronaut(), skimage.data.coffee()][:n]):
        Image.fromarray(img[::4, ::4]).save(folder / f"p{i}.png")
    return folder


def _is_grey(x: torch.Tensor) -> bool:
    return bool((x - x.mean(0, keepdim=True)).abs().max() < 1e-6)


def test_training_items_are_damaged_grey_crops_in_8_bit_levels(tmp_path: Path) -> None:
    damage = FilmDamage(sepia_prob=0.0, grain_prob=1.0)
    ds = FilmDataset(_folder(tmp_path), damage=damage, grey=True, crop_size=32, train=True, repeat=3)
    assert len(ds) == 6
    torch.manual_seed(0)
    item = ds[0]
    assert set(item) == {"lq", "gt", "name"} and item["name"] == "p0.png"
    for key in ("lq", "gt"):
        x = item[key]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4), f"{key} is not on 8-bit levels"
        assert _is_grey(x), f"{key} is not grey"
    assert (item["lq"] - item["gt"]).abs().mean() > 1 / 255  # grain is always on here


def test_colour_mode_keeps_colour(tmp_path: Path) -> None:
    ds = FilmDataset(_folder(tmp_path), grey=False, crop_size=None, train=False)
    item = ds[1]  # coffee: a colour photo, whole image in validation
    assert item["gt"].shape == (3, 100, 150) and not _is_grey(item["gt"])


def test_validation_damage_is_a_function_of_the_index(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    a = FilmDataset(folder, crop_size=48, train=False, seed=3)
    b = FilmDataset(folder, crop_size=48, train=False, seed=3)
    assert torch.equal(a[0]["lq"], b[0]["lq"]) and torch.equal(a[1]["gt"], b[1]["gt"])
    c = FilmDataset(folder, crop_size=48, train=False, seed=4)
    assert not torch.equal(a[0]["lq"], c[0]["lq"])
    assert a[0]["gt"].shape == (3, 48, 48)


def test_sources_like_colorization(tmp_path: Path) -> None:
    """skimage, a list mixing skimage and a folder, and optional folders that may be missing."""
    folder = _folder(tmp_path)
    assert len(FilmDataset("skimage:val", crop_size=None, train=False)) == 2
    with pytest.warns(UserWarning, match="optional training photos not found"):
        mixed = FilmDataset(["skimage:val", str(folder)], crop_size=32, optional_sources=[tmp_path / "absent"])
    assert len(mixed) == 4
    assert len(FilmDataset("skimage:val", crop_size=32, optional_sources=[folder])) == 4


def test_a_non_image_in_the_folder_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 1)
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.png: not an image"):
        FilmDataset(folder, crop_size=32)
