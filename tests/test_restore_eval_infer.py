"""evaluate.py and infer.py for film-restoration models: report schema and an independently computed baseline
PSNR, frame folders and video with timestamps kept, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from conftest import ROOT
from restoregan.data.film_damage import FilmDamage
from restoregan.data.film_dataset import damaged_pair
from restoregan.data.io import read_image, write_image
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.gans.restore_unet import RestoreUNet
from restoregan.models import load_model
from restoregan.tasks.restore import RestorationTask, median3
from cli_utils import compose_conf, infer_in_process, photo_folder


ARCH = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 2, "num_conv": 1}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny restorer whose correction is not zero (random last conv), exported like train.py does."""
    torch.manual_seed(0)
    net = RestoreUNet(**{k: v for k, v in ARCH.items() if k != "_target_"}).eval()
    torch.nn.init.normal_(net.conv_last.weight, std=0.02)
    path = tmp_path_factory.mktemp("model") / "generator"
    return save_export(path, net, ARCH, {"task": RestorationTask(grey=True).config(), "scale": 1})


def test_evaluate_report_and_damaged_psnr_recomputed_independently(model: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "clean")
    out = tmp_path / "eval"
    report = evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={photos}", f"out_dir={out}", "device=cpu",
                                        "lpips=false", "task=restore", "task.save_inputs=true", "task.seed=5"]))
    assert json.loads((out / "metrics.json").read_text()) == report
    assert "| damaged |" in (out / "metrics.md").read_text() and (out / "comparison.png").stat().st_size > 0
    assert report["task"] == "restore" and report["grey"] is True and report["seed"] == 5
    assert list(report["methods"]) == ["damaged", "median", "generator"]
    for method in report["methods"].values():
        assert {"psnr", "ssim", "lpips", "images"} <= set(method) and method["lpips"] is None
        assert [im["image"] for im in method["images"]] == ["photo0.png", "photo1.png"]
    # independent: the saved damaged/clean images, skimage's PSNR
    for i, name in enumerate(["photo0", "photo1"]):
        damaged, clean = read_image(out / "damaged" / f"{name}.png"), read_image(out / "clean" / f"{name}.png")
        assert np.array_equal(clean[..., 0], clean[..., 1]) and np.array_equal(clean[..., 1], clean[..., 2])  # grey
        expected = peak_signal_noise_ratio(clean.astype(np.float64), damaged.astype(np.float64), data_range=1.0)
        assert report["methods"]["damaged"]["images"][i]["psnr"] == pytest.approx(expected, abs=1e-9)
        median = peak_signal_noise_ratio(clean.astype(np.float64), median3(damaged).astype(np.float64), data_range=1.0)
        assert report["methods"]["median"]["images"][i]["psnr"] == pytest.approx(median, abs=1e-9)
        # the damage is the seeded film model's (FilmDamage's defaults, the training damage), reproducible outside
        again, _ = damaged_pair(read_image(photos / f"{name}.png"), np.random.default_rng([5, i]), FilmDamage(), True)
        assert np.array_equal(np.round(again * 255), np.round(damaged * 255))
    assert report["methods"]["generator"]["psnr"] != report["methods"]["damaged"]["psnr"]


def test_baseline_only_report_needs_the_task(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "clean")
    report = evaluate(compose_conf("evaluate", ["task=restore", f"hr_dir={photos}", f"out_dir={tmp_path / 'e'}",
                                        "device=cpu", "lpips=false"]))
    assert list(report["methods"]) == ["damaged", "median"] and report["grey"] is True


def _frames(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((48, 64, 3), 0.3 + 0.1 * i, np.float32)
        img[10:20, 5 + 4 * i : 20 + 4 * i] = 0.9
        write_image(folder / f"{i + 1}.png", img)
    return folder


def test_frame_folder_is_restored_frame_by_frame(model: Path, tmp_path: Path) -> None:
    frames = _frames(tmp_path / "reel")
    written = infer_in_process([f"ckpt={model}", f"input={frames}", f"output={tmp_path / 'out'}", "tile=16", "tile_overlap=32"])
    assert [p.name for p in written] == ["1_restored.png", "2_restored.png", "3_restored.png"]
    net = load_model(model).net
    for src, dst in zip(sorted(frames.iterdir()), written):
        x = torch.from_numpy(read_image(src)).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected = net(x)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        assert np.abs(read_image(dst) - expected).max() <= 0.5 / 255 + 1e-4  # tiled == one pass, then 8 bits


def test_output_never_overwrites_an_input(model: Path, tmp_path: Path) -> None:
    frames = tmp_path / "in"
    frames.mkdir()
    write_image(frames / "a.png", np.zeros((16, 16, 3), np.float32))
    write_image(frames / "a_restored.png", np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="overwrite an input"):
        infer_in_process([f"ckpt={model}", f"input={frames}", f"output={frames}"])


def _video(path: Path, n: int = 5) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            arr = np.full((48, 64, 3), 30 * i + 40, np.uint8)
            arr[10:30, 5 + 4 * i : 25 + 4 * i] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def test_video_is_restored_to_a_video_with_its_timestamps(model: Path, tmp_path: Path) -> None:
    video = _video(tmp_path / "clip.mp4")
    (written,) = infer_in_process([f"ckpt={model}", f"input={video}", f"output={tmp_path / 'out'}"])
    assert written == tmp_path / "out" / "clip_restored.mp4"
    assert _times(written) == pytest.approx(_times(video))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], "temp file left behind"
    (short,) = infer_in_process([f"ckpt={model}", f"input={video}", f"output={tmp_path / 'o2'}", "video.max_frames=2"])
    assert _times(short) == pytest.approx(_times(video)[:2])


def test_non_image_is_rejected_in_one_line(model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    proc = subprocess.run(
        [sys.executable, "infer.py", f"ckpt={model}", f"input={bad}", f"output={tmp_path / 'o'}", "device=cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: not an image")
    folder = photo_folder(tmp_path / "clean")
    (folder / "readme.jpg").write_text("not a photo")
    proc = subprocess.run(
        [sys.executable, "evaluate.py", f"ckpt={model}", f"hr_dir={folder}", f"out_dir={tmp_path / 'e'}", "device=cpu",
         "lpips=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {folder / 'readme.jpg'}: not an image")
