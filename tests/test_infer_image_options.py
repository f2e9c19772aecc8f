"""infer.py's image options as Real-ESRGAN users expect them: outscale, alpha, 16-bit, output format/quality/suffix,
grey kept grey (not for colorize), bad values refused in one line. Outputs are read back with Pillow or OpenCV
directly, and compared with references computed here (torch's bilinear, Pillow's Lanczos and BT.601 grey)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cli_utils import infer_in_process
from conftest import ROOT


@pytest.fixture(scope="module")
def bilinear(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """x2 and x4 SRResNet exports whose residual branch is zero: the output is exactly torch's bilinear upscale
    (align_corners=False) of the input, so expected values are computed here independently of infer.py."""
    from restoregan.gans.checkpoint import save_export
    from restoregan.gans.srresnet import SRResNet
    from restoregan.tasks.sr import SuperResolutionTask

    folder, models = tmp_path_factory.mktemp("models"), {}
    for scale in (2, 4):
        kwargs = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "scale": scale}
        net = SRResNet(**kwargs)
        torch.nn.init.zeros_(net.conv_last.weight)
        torch.nn.init.zeros_(net.conv_last.bias)
        models[scale] = save_export(folder / f"bilinear_x{scale}", net,
                                    {"_target_": "restoregan.gans.srresnet.SRResNet", **kwargs},
                                    {"task": SuperResolutionTask(scale=scale).config(), "scale": scale})
    return models


def _run(ckpt: Path, src: Path, out: Path, *options: str) -> Path:
    (target,) = infer_in_process([f"ckpt={ckpt}", f"input={src}", f"output={out}", *options])
    return target


def _rgb8(path: Path, h: int, w: int, seed: int = 0, step: int = 1) -> np.ndarray:
    """Random 8-bit RGB PNG; values multiples of `step` (16 for x2, 64 for x4: the bilinear upscale then lands
    on whole 8-bit levels, so a reference resized from the 8-bit file carries no rounding of its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = (np.random.default_rng(seed).integers(0, 256 // step, (h, w, 3)) * step).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def _bilinear(img: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, C) float -> torch's bilinear upscale, (H*s, W*s, C) float32."""
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def _lanczos(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A second implementation of the documented filter: Lanczos-3 at pixel centres, widened by the factor when
    shrinking, weights cut at the borders and renormalised (Pillow's convention); (H, W[, C]) -> size (w, h)."""

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        ratio = n_in / n_out
        x = (np.arange(n_in)[None, :] + 0.5 - (np.arange(n_out)[:, None] + 0.5) * ratio) / max(ratio, 1.0)
        w = np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
        return w / w.sum(axis=1, keepdims=True)

    rows, cols = matrix(img.shape[0], size[1]), matrix(img.shape[1], size[0])
    out = np.tensordot(rows, np.asarray(img, np.float64), axes=(1, 0))  # (h, W, ...)
    return np.clip(np.tensordot(cols, out, axes=(1, 1)).swapaxes(0, 1), 0, 255)  # (w, h, ...) -> (h, w, ...)


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def test_outscale_2_on_an_x4_model_is_the_x4_output_lanczos_resized(bilinear: dict[int, Path], tmp_path: Path) -> None:
    img = _rgb8(tmp_path / "in" / "a.png", 13, 10, step=64)
    x4 = _run(bilinear[4], tmp_path / "in" / "a.png", tmp_path / "x4")
    x2 = _run(bilinear[4], tmp_path / "in" / "a.png", tmp_path / "x2", "outscale=2")
    assert x4.name == x2.name == "a_x4.png"  # the task's suffix: outscale changes the size, not the name
    with Image.open(x4) as big, Image.open(x2) as small:
        assert big.size == (40, 52) and small.size == (20, 26)
        assert _levels(np.asarray(big), _bilinear(img / 255.0, 4) * 255) == 0  # the model is bilinear
        assert _levels(np.asarray(small), np.round(_lanczos(np.asarray(big), (20, 26)))) <= 1


@pytest.mark.parametrize("outscale", [3.5, 0.5])
def test_outscale_odd_sizes(bilinear: dict[int, Path], tmp_path: Path, outscale: float) -> None:
    """13x9 input: 3.5 -> 46x32 (45.5 and 31.5 round up), 0.5 -> 7x5 (below the input: antialiased Lanczos)."""
    img = _rgb8(tmp_path / "in" / "b.png", 9, 13, seed=1, step=16)
    out = _run(bilinear[2], tmp_path / "in" / "b.png", tmp_path / "out", f"outscale={outscale}")
    size = tuple(math.floor(side * outscale + 0.5) for side in (13, 9))
    x2 = _bilinear(img.astype(np.float64), 2)
    with Image.open(out) as got:
        assert got.size == size == ((46, 32) if outscale == 3.5 else (7, 5))
        assert _levels(np.asarray(got), np.round(_lanczos(x2, size))) <= 1


def _rgba(path: Path) -> np.ndarray:
    """16x12 RGBA PNG: left half fully transparent, right half opaque (noise colour under both)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.random.default_rng(2).integers(0, 256, (12, 16, 4), dtype=np.uint8)
    rgba[:, :8, 3], rgba[:, 8:, 3] = 0, 255
    Image.fromarray(rgba, "RGBA").save(path)
    return rgba


def test_alpha_is_kept_and_upscaled_on_its_own(bilinear: dict[int, Path], tmp_path: Path) -> None:
    rgba = _rgba(tmp_path / "in" / "t.png")
    (tmp_path / "plain").mkdir()
    Image.fromarray(rgba[:, :, :3]).save(tmp_path / "plain" / "t.png")
    out = _run(bilinear[4], tmp_path / "in" / "t.png", tmp_path / "out")
    plain = _run(bilinear[4], tmp_path / "plain" / "t.png", tmp_path / "plain_out")
    with Image.open(out) as got, Image.open(plain) as rgb_only:
        assert got.mode == "RGBA" and got.size == (64, 48)
        arr = np.asarray(got)
        assert np.array_equal(arr[:, :, :3], np.asarray(rgb_only))  # the colour under alpha is the model's, unmixed
    alpha = arr[:, :, 3]
    # Lanczos reaches 3 input pixels (12 output pixels) from the edge at input column 8: beyond, flat stays exact
    assert (alpha[:, : (8 - 3) * 4] == 0).all() and (alpha[:, (8 + 3) * 4 :] == 255).all()
    assert _levels(alpha, np.round(_lanczos(rgba[:, :, 3], (64, 48)))) <= 1

    dropped = _run(bilinear[4], tmp_path / "in" / "t.png", tmp_path / "no_alpha", "alpha=false")
    with Image.open(dropped) as got:
        assert got.mode == "RGB" and np.array_equal(np.asarray(got), arr[:, :, :3])


def test_16_bit_in_gives_16_bit_out(bilinear: dict[int, Path], tmp_path: Path) -> None:
    """A smooth 16-bit gradient through the x2 bilinear model: a 16-bit PNG with far more than 256 levels, equal
    to the bilinear upscale of the 16-bit values (not of 8-bit ones)."""
    ramp = np.linspace(0, 65535, 8 * 64).reshape(8, 64)  # 512 levels, 128 apart: no 8-bit file holds them
    img = np.round(np.stack([ramp, ramp[::-1, ::-1], np.full((8, 64), 30000.5)], axis=2)).astype(np.uint16)
    (tmp_path / "in").mkdir()
    assert cv2.imwrite(str(tmp_path / "in" / "g.png"), img[:, :, ::-1])  # OpenCV writes BGR
    out = _run(bilinear[2], tmp_path / "in" / "g.png", tmp_path / "out")
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == (16, 128, 3)
    got = got[:, :, ::-1]
    assert len(np.unique(got[:, :, 0])) > 1000 and (got % 257 != 0).mean() > 0.9  # not 8-bit levels scaled up
    assert _levels(got, np.round(_bilinear(img / 65535.0, 2) * 65535)) <= 1
    eight = cv2.imread(str(_run(bilinear[2], tmp_path / "in" / "g.png", tmp_path / "o8", "image_depth=8")),
                       cv2.IMREAD_UNCHANGED)
    assert eight.dtype == np.uint8 and _levels(eight[:, :, ::-1], np.round(got / 257.0)) <= 1

    grey = np.round(np.tile(np.linspace(0, 65535, 40), (6, 1))).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "in" / "grey.png"), grey)
    with Image.open(_run(bilinear[2], tmp_path / "in" / "grey.png", tmp_path / "og", "keep_grey=true")) as g:
        assert g.mode == "I;16" and g.size == (80, 12)  # Pillow reads one-channel 16-bit PNGs at full depth
        values = np.asarray(g)
    assert len(np.unique(values)) > 60 and _levels(values, np.round(_bilinear(grey[:, :, None] / 65535.0, 2)[:, :, 0]
                                                                      * 65535)) <= 1


@pytest.mark.parametrize("fmt, pil_format", [("jpg", "JPEG"), ("webp", "WEBP")])
def test_jpeg_and_webp_outputs(bilinear: dict[int, Path], tmp_path: Path, fmt: str, pil_format: str) -> None:
    img = _rgb8(tmp_path / "in" / "a.png", 20, 24)
    smooth = np.round(_bilinear(img / 255.0, 2) * 255)
    sizes = {}
    for quality in (95, 10):
        out = _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / f"q{quality}", f"image_format={fmt}",
                   f"quality={quality}")
        assert out.name == f"a_x2.{fmt}"
        with Image.open(out) as got:
            assert got.format == pil_format and got.size == (48, 40) and got.mode == "RGB"
            err = np.abs(np.asarray(got, dtype=np.float64) - smooth).mean()
        sizes[quality] = (out.stat().st_size, err)
    assert sizes[10][0] < sizes[95][0] and sizes[95][1] < sizes[10][1] < 40  # quality reaches the encoder


def test_auto_format_follows_the_input(bilinear: dict[int, Path], tmp_path: Path) -> None:
    """auto: a JPEG in gives a JPEG out, a WebP a WebP, a BMP a PNG."""
    img = np.random.default_rng(3).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.webp", "c.bmp"):
        Image.fromarray(img).save(tmp_path / "in" / name)
    targets = infer_in_process([f"ckpt={bilinear[2]}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}"])
    assert [p.name for p in targets] == ["a_x2.jpg", "b_x2.webp", "c_x2.png"]
    for path, fmt in zip(targets, ("JPEG", "WEBP", "PNG")):
        with Image.open(path) as got:
            assert got.format == fmt and got.size == (24, 20)


def test_suffix_option(bilinear: dict[int, Path], tmp_path: Path) -> None:
    _rgb8(tmp_path / "in" / "a.png", 6, 5)
    assert _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "o1", "suffix=_up").name == "a_up.png"
    assert _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "o2", "suffix=''").name == "a.png"
    before = (tmp_path / "in" / "a.png").read_bytes()
    with pytest.raises(ValueError, match="overwrite an input"):  # no suffix, same folder: the input itself
        _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "in", "suffix=''")
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_grey_stays_grey(bilinear: dict[int, Path], tmp_path: Path) -> None:
    grey = np.random.default_rng(4).integers(0, 256, (10, 14), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(grey, "L").save(tmp_path / "in" / "l.png")
    Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2)).save(tmp_path / "in" / "rgb_equal.png")
    colour = _run(bilinear[2], tmp_path / "in" / "l.png", tmp_path / "colour", "keep_grey=false")
    with Image.open(colour) as c:
        assert c.mode == "RGB"
        as_grey = np.asarray(c.convert("L"))  # Pillow's BT.601 luminance
    for name in ("l.png", "rgb_equal.png"):
        with Image.open(_run(bilinear[2], tmp_path / "in" / name, tmp_path / name, "keep_grey=true")) as g:
            assert g.mode == "L" and g.size == (28, 20)
            assert _levels(np.asarray(g), as_grey) <= 1
    # grey + alpha: OpenCV writes no two-channel PNG, so RGBA with equal channels, the alpha kept
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=2), "LA").save(tmp_path / "in" / "la.png")
    with Image.open(_run(bilinear[2], tmp_path / "in" / "la.png", tmp_path / "la", "keep_grey=true")) as g:
        arr = np.asarray(g)
        assert g.mode == "RGBA" and (arr[:, :, 3] == 255).all() and _levels(arr[:, :, 0], as_grey) <= 1
        assert np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2])


def test_read_image_full_keeps_read_images_checks_and_colour(tmp_path: Path) -> None:
    from restoregan.data.io import ImageReadError, read_image, read_image_full

    rgba = np.random.default_rng(5).integers(0, 65536, (7, 9, 4), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "a.png"), rgba)
    full = read_image_full(tmp_path / "a.png")
    assert full.bits == 16 and not full.grey and full.format == "PNG"
    assert np.array_equal(full.rgb, read_image(tmp_path / "a.png"))
    assert np.array_equal(full.alpha, rgba[:, :, 3] / np.float32(65535))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(ImageReadError, match=r"cut\.png: truncated PNG"):
        read_image_full(tmp_path / "cut.png")


def test_colorize_still_colours_a_grey_input(tmp_path: Path) -> None:
    from pipeline_utils import make_export

    model = make_export(tmp_path / "runs", "tiny_colorize", "colorize")
    grey = (np.add.outer(np.arange(40), np.arange(48)) * 2).astype(np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(grey, "L").save(tmp_path / "in" / "old.png")
    out = _run(model, tmp_path / "in" / "old.png", tmp_path / "out", "keep_grey=true")  # asked, yet colour
    with Image.open(out) as got:
        assert out.name == "old_color.png" and got.mode == "RGB"
        arr = np.asarray(got, dtype=np.int64)
    assert np.abs(arr[:, :, 0] - arr[:, :, 2]).max() > 5  # chroma, not grey


@pytest.mark.parametrize("option, message", [
    ("outscale=0", "outscale=0: expected an output factor above 0"),
    ("outscale=abc", "outscale=abc: expected an output factor above 0"),
    ("quality=101", "quality=101: expected a whole number from 1 to 100"),
    ("image_format=gif", "image_format=gif: expected one of auto, png, jpg, webp"),
    ("image_depth=12", "image_depth=12: expected auto, 8 or 16"),
    ("suffix=a/b", "suffix=a/b: expected text"),
    ("alpha=maybe", "alpha"),
])
def test_bad_values_are_refused(bilinear: dict[int, Path], tmp_path: Path, option: str, message: str) -> None:
    _rgb8(tmp_path / "in" / "a.png", 6, 5)
    with pytest.raises(ValueError, match=f"^{message}") as info:
        _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "out", option)
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_depth_16_with_jpeg_is_refused(bilinear: dict[int, Path], tmp_path: Path) -> None:
    _rgb8(tmp_path / "in" / "a.png", 6, 5)
    with pytest.raises(ValueError, match="^image_depth=16: JPG holds 8 bits only"):
        _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "out", "image_depth=16", "image_format=jpg")


@pytest.mark.slow
def test_cli_refuses_a_bad_quality_in_one_line(bilinear: dict[int, Path], tmp_path: Path) -> None:
    _rgb8(tmp_path / "in" / "a.png", 6, 5)
    cmd = [sys.executable, str(ROOT / "infer.py"), f"ckpt={bilinear[2]}", f"input={tmp_path / 'in' / 'a.png'}",
           f"output={tmp_path / 'out'}", "device=cpu", "quality=0"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: quality=0: expected a whole number from 1 to 100 (JPEG and WebP quality)"]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def pixel_cap_restored():
    """infer() sets the process-wide pixel cap (max_pixels=): put the previous one back for later tests."""
    from restoregan.data.io import get_max_pixels, set_max_pixels

    before = get_max_pixels()
    yield
    set_max_pixels(before)


def test_outscale_beyond_the_pixel_cap_is_refused_before_the_model_runs(bilinear: dict[int, Path], tmp_path: Path,
                                                                       pixel_cap_restored: None) -> None:
    _rgb8(tmp_path / "in" / "a.png", 6, 5)  # 30 pixels; outscale=200 -> 1000x1200 = 1.2 MP, above the cap of 1 MP
    with pytest.raises(ValueError, match=r"a\.png: outscale=200\.0 makes it 1000x1200 = 1200000 pixels, above "
                                         r"max_pixels=1000000"):
        _run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "out", "outscale=200", "max_pixels=1000000")
    assert not (tmp_path / "out" / "a_x2.png").exists()
    # under the cap it is written at that size
    with Image.open(_run(bilinear[2], tmp_path / "in" / "a.png", tmp_path / "ok", "outscale=20",
                         "max_pixels=1000000")) as got:
        assert got.size == (100, 120)
