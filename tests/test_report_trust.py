"""Reports a reader can check (issue 14, item 7): metrics.json names each model's file and its sha256,
comparison.png names its metric and shows where each crop came from, the pipeline's contact sheet shows output
detail at full resolution."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_utils import compose_conf
from pipeline_utils import make_export, run_infer, write_clip
from restoregan.data.io import write_image
from restoregan.evaluation.loop import evaluate_models
from restoregan.evaluation.report import checkpoint_record, comparison_row, metric_label, overview
from restoregan.models import load_model
from restoregan.tasks.base import RunOptions
from restoregan.tasks.sr import SuperResolutionTask

RED = (1.0, 0.0, 0.0)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _textured(h: int, w: int, box: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Flat grey (h, w, 3) with noise only in the square `box` (top, left, side): the most detailed crop."""
    img = np.full((h, w, 3), 0.5, np.float32)
    top, left, side = box
    img[top : top + side, left : left + side] = np.random.default_rng(seed).random((side, side, 3))
    return img


def test_metrics_json_records_each_models_checkpoint(tmp_path: Path) -> None:
    """A model's entry names its weights and yaml with their sha256 (hashlib's, of the files); baselines none."""
    yaml_path = make_export(tmp_path / "runs", "tiny", "sr")
    weights = yaml_path.with_suffix(".safetensors")
    hr = tmp_path / "HR"
    hr.mkdir()
    for i in range(2):
        write_image(hr / f"im{i}.png", _textured(32, 32, (8, 8, 16), seed=i))
    cfg = compose_conf("evaluate", [f"hr_dir={hr}", f"out_dir={tmp_path / 'report'}", "lpips=false"])
    with torch.no_grad():
        report = evaluate_models(SuperResolutionTask(2), {"tiny": load_model(yaml_path)}, cfg, RunOptions())
    on_disk = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert on_disk == report
    record = on_disk["methods"]["tiny"]["checkpoint"]
    assert record == {"path": str(weights.absolute()), "sha256": _sha(weights),
                      "yaml": str(yaml_path.absolute()), "yaml_sha256": _sha(yaml_path)}
    assert list(on_disk["methods"]) == ["bicubic", "tiny"] and "checkpoint" not in on_disk["methods"]["bicubic"]
    # comparison.png carries the overview thumbnails' red crop outlines
    sheet = np.asarray(Image.open(tmp_path / "report" / "comparison.png").convert("RGB"))
    assert np.all(sheet == (255, 0, 0), axis=-1).any()


def test_checkpoint_record_of_a_single_file(tmp_path: Path) -> None:
    model = tmp_path / "net.pth"
    model.write_bytes(b"not really weights, but a file whose hash is known")
    assert checkpoint_record(model) == {"path": str(model), "sha256": _sha(model)}
    lone = tmp_path / "lone.safetensors"  # no yaml beside it: just this file
    lone.write_bytes(b"other bytes")
    assert checkpoint_record(lone) == {"path": str(lone), "sha256": _sha(lone)}
    assert checkpoint_record(tmp_path / "built_in_memory.pth") is None


@pytest.mark.parametrize("header, value, want", [
    ("PSNR-Y (dB)", 30.4167, "PSNR-Y 30.42 dB"),
    ("PSNR (dB, RGB)", 28.0, "PSNR 28.00 dB (RGB)"),
    ("SSIM (luma)", 0.91234, "SSIM 0.9123 (luma)"),
    ("CIEDE2000 ΔE", 3.14159, "CIEDE2000 ΔE 3.14"),
    ("PSNR-Y (dB)", None, "PSNR-Y n/a"),
])
def test_metric_label_names_the_metric(header: str, value: float | None, want: str) -> None:
    digits = 4 if header.startswith("SSIM") else 2
    assert metric_label(header, value, digits) == want


def test_comparison_row_names_image_box_and_metric() -> None:
    """The first cell: the whole target with the crop box outlined, labelled with the image name and the box;
    then the target's crop and each method's, labelled with the metric's header and value."""
    target = _textured(48, 64, (8, 40, 16))
    outputs = {"bicubic": np.full_like(target, 0.25), "tiny": target[::-1].copy()}
    row = comparison_row("butterfly.png", target, outputs, {"bicubic": 22.125, "tiny": None},
                         ("psnr", "PSNR-Y (dB)", 2), crop=16, cell=32)
    assert [labels for _, labels in row] == [
        ["butterfly.png", "crop x=40 y=8 size=16"], ["target", "16x16 px"],
        ["bicubic", "PSNR-Y 22.12 dB"], ["tiny", "PSNR-Y n/a"]]
    np.testing.assert_array_equal(row[1][0], target[8:24, 40:56])
    np.testing.assert_array_equal(row[3][0], outputs["tiny"][8:24, 40:56])
    # the thumbnail: 64x48 shrunk to fit 32 (factor 1/2); the box (x 40, y 8, 16) becomes x 20..27, y 4..11
    thumb = row[0][0]
    assert thumb.shape == (24, 32, 3)
    red = np.all(np.isclose(thumb, RED), axis=-1)
    assert red[4, 20:28].all() and red[11, 20:28].all() and red[4:12, 20].all() and red[4:12, 27].all()
    assert not red[7:9, 23:25].any()  # inside the outline: the picture
    assert red.sum() == red[4:12, 20:28].sum()  # nothing red outside the box


def test_overview_keeps_small_images_at_their_size() -> None:
    img = np.full((20, 30, 3), 0.5, np.float32)
    thumb = overview(img, 4, 10, 8, cell=192)
    red = np.all(np.isclose(thumb, RED), axis=-1)
    assert thumb.shape == (20, 30, 3) and red[4, 10:18].all() and red[4:12, 17].all() and not red[:, :10].any()


def test_contact_sheet_has_full_resolution_crops(tmp_path: Path) -> None:
    """Each contact-sheet row ends with the output's 128 px crop at full resolution: its pixels are the output
    frame's (PNG frames: lossless), beside the input's same region."""
    from restoregan.grids import detail_box

    sr = make_export(tmp_path / "runs", "tiny_sr", "sr")  # x2
    rng = np.random.default_rng(0)
    frames = [np.clip(0.5 + 0.2 * rng.standard_normal((96, 128, 3)), 0, 1) for _ in range(3)]
    clip = write_clip(tmp_path / "reel.mp4", frames, fps=12)
    out = tmp_path / "out"
    run_infer([f"input={clip}", f"output={out}", f"stages.upscale.ckpt={sr}", "pipeline.order=[upscale]",
               "video.contact_frames=2", "video.contact_side=64"])
    sheet = np.asarray(Image.open(tmp_path / "out_contact.png").convert("RGB"))
    # rows: frames 0 and 2; columns: input and output shrunk to 64x48, then the input and output crops (128 px)
    label, row_h = 14, 14 + 128
    assert sheet.shape == (2 * row_h, 64 + 64 + 128 + 128, 3)
    for r, n in enumerate((0, 2)):
        frame = np.asarray(Image.open(out / f"{n:06d}.png").convert("RGB"))
        assert frame.shape == (192, 256, 3)
        top, left, side = detail_box(frame, 128)
        assert side == 128
        y = r * row_h + label
        cell = sheet[y : y + 128, 256 : 256 + 128]
        np.testing.assert_array_equal(cell, frame[top : top + 128, left : left + 128])
        assert not np.array_equal(sheet[y : y + 128, 128:256], cell)  # the input's region, not the output again
