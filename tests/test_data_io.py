"""Image I/O: formats handled (grey, RGBA, 16-bit, palette), one-line errors naming the file, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from restoregan.data.io import ImageReadError, from_pil, list_images, read_image, to_numpy, to_tensor, write_image


def test_grey_rgba_16bit_and_palette_are_read_as_rgb(tmp_path) -> None:
    grey = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    deep = np.zeros((4, 5, 3), np.uint16)
    deep[..., 0], deep[..., 2] = 65535, 257  # R full, B = 1/255 in 16-bit
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])  # OpenCV writes BGR
    Image.fromarray(grey[:8, :8]).convert("P").save(tmp_path / "palette.png")

    g = read_image(tmp_path / "grey.png")
    assert g.shape == (48, 64, 3) and g.dtype == np.float32
    np.testing.assert_allclose(g[..., 0], grey / 255.0, atol=1e-6)
    assert np.array_equal(g[..., 0], g[..., 2])
    r = read_image(tmp_path / "rgba.png")
    assert r.shape == (8, 8, 3)
    np.testing.assert_allclose(r[0, 0], [200 / 255, 0, 0], atol=1e-6)  # alpha dropped, colour kept
    d = read_image(tmp_path / "deep.png")
    np.testing.assert_allclose(d[0, 0], [1.0, 0.0, 257 / 65535], atol=1e-7)  # 16-bit precision kept
    pal = read_image(tmp_path / "palette.png")
    np.testing.assert_allclose(pal[..., 1], grey[:8, :8] / 255.0, atol=1e-6)  # palette expanded to its colours


def test_16bit_grey_and_grey_alpha(tmp_path) -> None:
    Image.fromarray(np.full((3, 4), 30000, np.uint16)).save(tmp_path / "g16.png")
    np.testing.assert_allclose(read_image(tmp_path / "g16.png"), 30000 / 65535, atol=1e-7)
    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0], la[..., 1] = 100, 7
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png"), 100 / 255, atol=1e-6)


def test_from_pil_follows_read_image(tmp_path) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        np.testing.assert_array_equal(from_pil(im), read_image(tmp_path / "x.png"))
    deep = Image.fromarray(np.full((3, 4), 40000, np.uint16))
    np.testing.assert_allclose(from_pil(deep), 40000 / 65535, atol=1e-7)
    assert from_pil(Image.new("L", (5, 3), 51)).shape == (3, 5, 3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello, not a picture"), "not an image"),
        (lambda p: p.write_bytes(b""), "not an image"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, make, message) -> None:
    path = tmp_path / "photo.png"
    make(path)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_truncated_png_is_rejected(tmp_path) -> None:
    good = tmp_path / "good.png"
    write_image(good, np.random.default_rng(0).random((64, 64, 3)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ImageReadError, match=str(bad)):
        read_image(bad)


def test_list_images_errors_and_natural_order(tmp_path) -> None:
    with pytest.raises(ImageReadError, match=f"{tmp_path / 'missing'}: no such directory"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no images found"):
        list_images(tmp_path / "empty")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ImageReadError, match=f"^{tmp_path / 'f.txt'}: not a directory"):
        list_images(tmp_path / "f.txt")
    frames = tmp_path / "frames"
    for n in (10, 2, 1):
        write_image(frames / f"{n}.png", np.zeros((2, 2, 3)))
    (frames / "notes.txt").write_text("ignored")
    (frames / "._1.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork beside a copied frame
    assert [p.name for p in list_images(frames)] == ["1.png", "2.png", "10.png"]
    with pytest.raises(ImageReadError, match=f"^{tmp_path / 'empty'}: no images found"):
        list_images(tmp_path / "empty")


def test_write_is_atomic_and_round_trips(tmp_path, monkeypatch) -> None:
    img = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    path = write_image(tmp_path / "sub" / "out.png", img)
    np.testing.assert_allclose(read_image(path), np.round(img * 255) / 255, atol=1e-6)
    # A failure mid-write leaves the previous file intact and no temp file behind.
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_image(path, np.zeros((5, 6, 3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]


def test_write_rounds_clips_and_rejects_bad_input(tmp_path) -> None:
    img = np.array([[[-0.2, 0.5, 1.7], [1 / 255 * 0.49, 1 / 255 * 0.51, 0.0]]], np.float32)
    back = read_image(write_image(tmp_path / "r.png", img))
    np.testing.assert_allclose(back * 255, [[[0, 128, 255], [0, 1, 0]]], atol=1e-4)
    jpg = read_image(write_image(tmp_path / "smooth.jpg", np.full((16, 16, 3), 0.4)))
    assert np.abs(jpg - 0.4).max() < 2 / 255
    with pytest.raises(ValueError, match=f"^{tmp_path / 'x.gif2'}: unknown image suffix"):
        write_image(tmp_path / "x.gif2", img)
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "grey.png", np.zeros((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "smooth.jpg"]


def test_tensor_conversions() -> None:
    img = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    t = to_tensor(img)
    assert t.shape == (3, 4, 5) and torch.equal(t[1], torch.from_numpy(img[..., 1]))
    np.testing.assert_array_equal(to_numpy(t[None]), img)
    np.testing.assert_array_equal(to_numpy(to_tensor(img[:, ::-1])), img[:, ::-1])  # negative strides
    with pytest.raises(ValueError, match="one image"):
        to_numpy(torch.zeros(2, 3, 4, 4))


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    """Not mkstemp's 0600: a finished film must be readable by whoever could read a plain open() file."""
    import os
    import stat

    from restoregan.atomic import atomic_write_bytes

    mask = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "out.bin", b"x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
