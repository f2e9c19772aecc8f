"""Images as people have them, and as an attacker might craft them: a header claiming 100000x100000, a 420 KB PNG
that decodes to 12000x12000, truncated files, animations, EXIF-rotated photos, 1x1 images. Each either works or
ends in one line that starts with the file's path, before anything large is allocated, with the file unchanged."""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageOps
from torch.utils.data import DataLoader

from conftest import ROOT
from restoregan.data import io as image_io
from restoregan.data.colorize_dataset import ColorizationDataset
from restoregan.data.datasets import HRImageDataset, PairedImageDataset
from restoregan.data.pipelines import BicubicDegradation
from restoregan.data.film_dataset import FilmDataset
from restoregan.data.io import ImageReadError, inspect_image, read_image, set_max_pixels, write_image
from restoregan.data.shards import ShardError, StreamingDataset
from restoregan.data.triplet_dataset import SyntheticMotionDataset
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.gans.restore_unet import RestoreUNet
from restoregan.inference.tiled import apply_tiled
from restoregan.tasks.colorize import ColorizationTask
from restoregan.tasks.image import LPIPS_MIN_SIDE, min_side
from restoregan.tasks.restore import RestorationTask
from restoregan.tasks.sr import SuperResolutionTask
from cli_utils import compose_conf, infer_in_process


# ------------------------------------------------------------------------------------------ crafted files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    """An 8-bit RGB PNG written by hand: signature, IHDR, `extra` chunks, one IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def zero_idat(width: int, height: int, rows_per_block: int = 100) -> bytes:
    """A valid zlib stream of `height` all-black rows, built from one compressed block repeated (full flushes
    make the blocks independent), so a 12000x12000 image costs 0.3 s and 420 KB rather than 432 MB of deflate."""
    block = bytes((width * 3 + 1) * rows_per_block)
    c = zlib.compressobj(9)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.flush()
    adler = 1
    for _ in range(height // rows_per_block):
        adler = zlib.adler32(block, adler)
    return first + again * (height // rows_per_block - 1) + tail[:-4] + adler.to_bytes(4, "big")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (JPEG-friendly), uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def truncated(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    out = path.with_name(f"cut_{path.name}")
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def assert_one_line(err: BaseException, path: Path, *words: str) -> str:
    text = str(err)
    assert text.startswith(str(path)) and "\n" not in text, text
    for word in words:
        assert word in text, text
    return text


@pytest.fixture
def no_decode(monkeypatch: pytest.MonkeyPatch) -> list:
    """Fails the test if OpenCV is asked to decode anything (refusals must come from the header)."""
    calls: list = []
    monkeypatch.setattr(image_io.cv2, "imdecode", lambda *a, **k: calls.append(a) or None)
    return calls


@pytest.fixture
def cap() -> None:
    """Tests that move the pixel cap put the default back."""
    yield
    set_max_pixels(image_io.DEFAULT_MAX_PIXELS)


# ------------------------------------------------------------------------------------------ pixel cap


def test_header_claiming_100000x100000_is_one_line_not_an_opencv_traceback(tmp_path: Path, no_decode: list) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(100_000, 100_000, zlib.compress(b"\0" * 1000)))
    before = digest(bomb)
    for reader in (read_image, inspect_image):
        with pytest.raises(ImageReadError) as err:
            reader(bomb)
        assert_one_line(err.value, bomb, "10000000000 pixels", "pixel cap", "max_pixels=")
    assert not no_decode and digest(bomb) == before


def test_small_file_decoding_to_12000x12000_is_refused_before_decoding(tmp_path: Path, no_decode: list, cap) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(12000, 12000, zero_idat(12000, 12000)))
    assert big.stat().st_size < 1_000_000  # a small file: only its header tells
    with pytest.raises(ImageReadError) as err:
        read_image(big)
    assert_one_line(err.value, big, "12000x12000", "100 MP", "max_pixels=144000000")
    assert not no_decode
    set_max_pixels(144_000_000)  # the value the message offers admits it (header only here: no 1.7 GB decode)
    assert (inspect_image(big).width, inspect_image(big).height) == (12000, 12000)
    set_max_pixels(None)
    assert inspect_image(big).width == 12000 and Image.MAX_IMAGE_PIXELS is None
    set_max_pixels(image_io.DEFAULT_MAX_PIXELS)  # Pillow's own bomb limit comes back with the cap
    assert Image.MAX_IMAGE_PIXELS == image_io._PILLOW_LIMIT


def test_8k_film_scan_passes_the_default_cap(tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    scan.write_bytes(png_bytes(8192, 6144, zero_idat(8192, 6144, 64)))
    info = inspect_image(scan)
    assert (info.width, info.height) == (8192, 6144)


def test_cap_applies_to_decoded_hf_images_and_tiff_pillow_cannot_parse(tmp_path: Path, cap) -> None:
    # a float32 RGB TIFF: Pillow cannot parse it, OpenCV decodes it; its size is read from the IFD instead
    img = np.random.default_rng(0).random((6, 9, 3)).astype(np.float32)
    tif = tmp_path / "float.tif"
    tif.write_bytes(cv2.imencode(".tif", img[..., ::-1])[1].tobytes())
    np.testing.assert_allclose(read_image(tif), img, atol=1e-6)
    set_max_pixels(50)
    with pytest.raises(ImageReadError) as err:
        read_image(tif)
    assert_one_line(err.value, tif, "9x6")
    with pytest.raises(ImageReadError, match="^hf:x\\[3\\]: 9x6 image"):
        image_io.from_pil(Image.new("RGB", (9, 6)), "hf:x[3]")


def test_hf_sources_check_the_header_before_decoding(tmp_path: Path, cap, no_decode: list) -> None:
    # "hf:" and "hf-stream:" images reach us encoded: the cap applies before any decoder runs, as for files
    Image.new("RGB", (40, 30)).save((tmp_path / "hf").mkdir() or tmp_path / "hf" / "a.png")
    ds = HRImageDataset(f"hf:{tmp_path / 'hf'}", BicubicDegradation(2), scale=2, crop_size=None, train=False)
    set_max_pixels(1000)
    with pytest.raises(ImageReadError) as err:
        ds[0]
    assert_one_line(err.value, tmp_path / "hf" / "a.png", "40x30")  # a local imagefolder: the file itself
    assert no_decode == []


def test_max_pixels_setting_is_checked_and_reaches_spawned_workers(cap) -> None:
    for bad in ("abc", -5, 0, 1.5, True):
        with pytest.raises(ValueError) as err:
            set_max_pixels(bad)
        assert str(err.value).startswith(f"max_pixels={bad}:")
    set_max_pixels("2000000")
    assert image_io.get_max_pixels() == 2_000_000
    assert image_io.os.environ[image_io.MAX_PIXELS_ENV] == "2000000"  # what a spawned worker's import reads
    for name in ("train", "evaluate", "infer"):
        assert OmegaConf.load(ROOT / "conf" / f"{name}.yaml").max_pixels == image_io.DEFAULT_MAX_PIXELS


# ------------------------------------------------------------------------------------------ truncation


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "ppm", "pgm", "webp", "tif"])
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file_is_refused_by_name(tmp_path: Path, ext: str, keep: float) -> None:
    img = photo()
    full = tmp_path / f"photo.{ext}"
    full.write_bytes(cv2.imencode(f".{ext}", img[..., 0] if ext == "pgm" else img)[1].tobytes())
    cut = truncated(full, keep)
    if len(cut.read_bytes()) == len(full.read_bytes()):
        cut.write_bytes(full.read_bytes()[:-1])
    before = digest(cut)
    for reader in (read_image, inspect_image) if ext in ("png", "jpg", "bmp", "ppm", "pgm") else (read_image,):
        with pytest.raises(ImageReadError) as err:
            reader(cut)
        assert_one_line(err.value, cut)
    assert digest(cut) == before


def test_data_after_the_end_marker_is_not_truncation(tmp_path: Path) -> None:
    """Motion photos append a video after the JPEG's end marker; some tools append bytes after a PNG's IEND."""
    img = photo()
    for ext, extra in (("jpg", b"\0\0\0\x18ftypmp42" + bytes(3000)), ("jpg", bytes(64)), ("png", b"trailing")):
        plain = tmp_path / f"plain.{ext}"
        plain.write_bytes(cv2.imencode(f".{ext}", img)[1].tobytes())
        padded = tmp_path / f"padded.{ext}"
        padded.write_bytes(plain.read_bytes() + extra)
        assert np.array_equal(read_image(padded), read_image(plain))
        inspect_image(padded)


def test_shard_member_truncated_is_named_with_its_shard(tmp_path: Path) -> None:
    good = cv2.imencode(".png", photo())[1].tobytes()
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in (("000_a.png", good), ("001_b.png", good[:-20])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = HRImageDataset(f"shards:{shard}", BicubicDegradation(2), scale=2, crop_size=None, train=False)
    with pytest.raises(ShardError) as err:
        list(StreamingDataset(ds))
    assert_one_line(err.value, shard, "001_b.png", "truncated PNG")


# ------------------------------------------------------------------------------------------ animation


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]


@pytest.mark.parametrize("name", ["anim.png", "anim.gif", "anim.webp", "pages.tif"])
def test_animated_images_are_refused_with_their_frame_count(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frames = _frames()
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert_one_line(err.value, path, "3 pages" if name.endswith("tif") else "3 frames")
    single = tmp_path / f"still.{name.split('.')[1]}"
    frames[0].save(single, **({"lossless": True} if name.endswith("webp") else {}))
    if name.endswith(("png", "webp", "tif")):  # OpenCV decodes these stills (GIF support depends on its build)
        assert read_image(single)[0, 0].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------ EXIF


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path: Path, ext: str) -> None:
    base = Image.fromarray(photo(24, 40))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.{ext}"
        base.save(path, exif=exif, **({"quality": 95} if ext == "jpg" else {"lossless": True} if ext == "webp" else {}))
        with Image.open(path) as im:
            reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
        got = read_image(path)
        assert got.shape == reference.shape, orientation
        assert np.abs(got - reference).max() <= (3 / 255 if ext == "jpg" else 0), orientation
        info = inspect_image(path)
        assert (info.height, info.width) == reference.shape[:2]


# ------------------------------------------------------------------------------------------ datasets


def _folder(root: Path, n: int = 3, size: tuple[int, int] = (48, 64)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(root / f"img{i}.png", photo(*size, seed=i) / 255.0)
    return root


def _bad_files(root: Path) -> dict[str, Path]:
    """One of each kind of bad file, each in its own otherwise good folder."""
    cases = {}
    folder = _folder(root / "truncated")
    cases["truncated"] = truncated(folder / "img1.png", 0.7)
    folder = _folder(root / "jpeg")
    (folder / "late.jpg").write_bytes(cv2.imencode(".jpg", photo())[1].tobytes()[:-300])
    cases["jpeg"] = folder / "late.jpg"
    folder = _folder(root / "bomb")
    (folder / "zbomb.png").write_bytes(png_bytes(100_000, 100_000, b"x"))
    cases["bomb"] = folder / "zbomb.png"
    folder = _folder(root / "animated")
    frames = _frames()
    frames[0].resize((64, 64)).save(folder / "moving.png", save_all=True,
                                     append_images=[f.resize((64, 64)) for f in frames[1:]])
    cases["animated"] = folder / "moving.png"
    return cases


def test_every_dataset_kind_refuses_a_bad_file_at_construction(tmp_path: Path) -> None:
    for kind, bad in _bad_files(tmp_path).items():
        before = digest(bad)
        builders = {
            "sr": lambda: HRImageDataset(str(bad.parent), BicubicDegradation(2), scale=2, crop_size=16),
            "sr-list": lambda: HRImageDataset([str(p) for p in sorted(bad.parent.iterdir())], BicubicDegradation(2),
                                              scale=2, crop_size=None, train=False),
            "colorize": lambda: ColorizationDataset(str(bad.parent), crop_size=16, short_side=32),
            "film": lambda: FilmDataset(str(bad.parent), crop_size=16),
            "triplet": lambda: SyntheticMotionDataset(str(bad.parent), crop_size=16, repeat=1),
        }
        for name, build in builders.items():
            with pytest.raises(ImageReadError) as err:
                build()
            assert_one_line(err.value, bad), (kind, name)
        assert digest(bad) == before


def test_paired_dataset_checks_both_sides(tmp_path: Path) -> None:
    hr, lr = _folder(tmp_path / "HR"), tmp_path / "LR"
    lr.mkdir()
    for i in range(3):
        write_image(lr / f"img{i}.png", photo(24, 32, seed=i) / 255.0)
    cut = truncated(lr / "img2.png", 0.6)
    cut.replace(lr / "img2.png")
    with pytest.raises(ImageReadError) as err:
        PairedImageDataset(lr, hr, scale=2, crop_size=16)
    assert_one_line(err.value, lr / "img2.png", "truncated PNG")


def test_decode_failure_in_a_worker_names_the_file_on_the_last_line(tmp_path: Path) -> None:
    """A file damaged after the up-front check: the worker's exception names it, and torch's re-raise ends with
    it (the line restoregan.cli prints)."""
    from restoregan.cli import one_line

    folder = _folder(tmp_path / "photos", 2)
    ds = HRImageDataset(str(folder), BicubicDegradation(2), scale=2, crop_size=16)
    victim = folder / "img1.png"
    victim.write_bytes(victim.read_bytes()[:-40])
    loader = DataLoader(ds, batch_size=1, num_workers=1, shuffle=False)
    with pytest.raises(ImageReadError) as err:
        list(loader)
    text = str(err.value)
    assert text.splitlines()[-1].startswith(f"restoregan.data.io.ImageReadError: {victim}: truncated PNG"), text
    assert one_line(err.value).startswith(f"{victim}: truncated PNG")


def test_validation_images_too_small_to_score_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "val", 1)
    write_image(folder / "thumb.png", np.full((10, 40, 3), 0.5, np.float32))
    with pytest.raises(ImageReadError) as err:
        HRImageDataset(str(folder), BicubicDegradation(4), scale=4, crop_size=None, train=False)
    assert_one_line(err.value, folder / "thumb.png", "19 pixels")
    (folder / "thumb.png").unlink()
    write_image(folder / "thumb.png", np.full((11, 40, 3), 0.5, np.float32))
    assert len(FilmDataset(str(folder), crop_size=None, train=False)) == 2  # restore/colorize SSIM: 11 suffices


# ------------------------------------------------------------------------------------------ small images


def _small_arch(name: str, **changes: object) -> dict:
    arch = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "generator" / f"{name}.yaml"))
    arch.update(changes)
    return arch


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exports of the small generator configs (random weights), as train.py writes them."""
    from hydra.utils import instantiate

    root = tmp_path_factory.mktemp("models")
    specs = {
        "sr": (_small_arch("rrdbnet_small", scale=2, num_block=1), SuperResolutionTask(2)),  # pixel-unshuffles
        "restore": (_small_arch("restore_unet_small"), RestorationTask(grey=True)),
        "colorize": (_small_arch("colorize_unet_small", pretrained=False),
                     ColorizationTask(color_space="yuv", render_size=64)),
    }
    out = {}
    for name, (arch, task) in specs.items():
        torch.manual_seed(0)
        meta = {"task": task.config(), "scale": task.scale}
        out[name] = save_export(root / name, instantiate(arch).eval(), arch, meta)
    return out


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 5)])
def test_tiny_images_are_padded_through_every_model(models: dict[str, Path], tmp_path: Path, size: tuple) -> None:
    src = tmp_path / "tiny.png"
    write_image(src, np.random.default_rng(1).random((*size, 3)))
    before = digest(src)
    for task, ckpt in models.items():
        (target,) = infer_in_process([f"ckpt={ckpt}", f"input={src}", f"output={tmp_path / task}"])
        out = read_image(target)
        scale = 2 if task == "sr" else 1
        assert out.shape == (size[0] * scale, size[1] * scale, 3), task
    assert digest(src) == before


def test_padding_in_upscale_leaves_normal_images_as_the_net_pads_them() -> None:
    torch.manual_seed(0)
    net = RestoreUNet(num_feat=8, num_levels=2, num_conv=1).eval()
    torch.nn.init.normal_(net.conv_last.weight, std=0.05)
    x = torch.rand(1, 3, 18, 27)
    with torch.no_grad():
        assert torch.allclose(apply_tiled(net, x, 1), net(x), atol=1e-6)  # reflect, as the net's own padding
        tiny = apply_tiled(net, torch.rand(1, 3, 1, 1), 1)  # the net alone cannot reflect-pad a 1x1 image
    assert tiny.shape == (1, 3, 1, 1) and torch.isfinite(tiny).all()


@pytest.mark.parametrize("task", ["sr", "restore", "colorize"])
def test_evaluate_refuses_an_image_too_small_to_score(models: dict[str, Path], tmp_path: Path, task: str) -> None:
    folder = tmp_path / "hr"
    folder.mkdir()
    write_image(folder / "a_big.png", photo(40, 40) / 255.0)
    write_image(folder / "b_tiny.png", np.full((1, 1, 3), 0.5, np.float32))
    overrides = [f"ckpt={models[task]}", f"hr_dir={folder}", f"out_dir={tmp_path / 'eval'}", "device=cpu",
                 "lpips=false", *(["task=colorize", "task.fid=false"] if task == "colorize" else [])]
    with pytest.raises(ImageReadError) as err:
        evaluate(compose_conf("evaluate", overrides))
    least = "at least 16x16" if task == "sr" else "at least 11x11"
    assert_one_line(err.value, folder / "b_tiny.png", "too small to score", least)
    assert not (tmp_path / "eval" / "metrics.json").exists()
    (folder / "b_tiny.png").unlink()
    side = 16 if task == "sr" else 11  # SR: 11 + 2 x scale 2, rounded up to a multiple of the scale
    write_image(folder / "b_tiny.png", photo(side, side, seed=3) / 255.0)
    report = evaluate(compose_conf("evaluate", overrides))  # the smallest size the message names is scored
    assert len(next(iter(report["methods"].values()))["images"]) == 2


def test_lpips_raises_the_minimum_only_when_it_runs() -> None:
    assert min_side(11, "ssim", OmegaConf.create({"lpips": False, "lpips_net": "alex"})) == (11, "ssim")
    least, why = min_side(11, "ssim", OmegaConf.create({"lpips": True, "lpips_net": "alex"}))
    assert least == LPIPS_MIN_SIDE["alex"] == 31 and "LPIPS" in why
