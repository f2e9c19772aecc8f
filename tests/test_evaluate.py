"""evaluate.py: reproduces the published bicubic baselines, writes the report, fails clearly on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import ROOT, shared_path
from restoregan.evaluation.run import load_models, method_names
from restoregan.evaluation.sr import Options, evaluate_sr


class NearestUpscaler(nn.Module):
    """Stands in for a generator: x4 nearest neighbour, one (unused) parameter so it has a device."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=4, mode="nearest") + self.dummy


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory):
    """Empty torch hub cache and no network, whatever machine runs the tests."""
    home = tmp_path_factory.mktemp("torch_home")

    def no_download(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setattr(torch.hub, "_hub_dir", str(home / "hub"))
        mp.setattr(torch.hub, "download_url_to_file", no_download)
        yield home


@pytest.fixture(scope="module")
def set5_report(offline: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Set5 x4 with the provided LR, bicubic plus a nearest-neighbour 'model', LPIPS requested (offline)."""
    data = shared_path("benchmarks", "Set5", "x4")
    out = tmp_path_factory.mktemp("set5")
    report = evaluate_sr(data / "HR", out, 4, {"nearest": NearestUpscaler()}, data / "LR", Options(tile=64))
    return report, out


@pytest.mark.data
def test_set5_bicubic_matches_published(set5_report: tuple[dict, Path]) -> None:
    bicubic = set5_report[0]["methods"]["bicubic"]
    assert bicubic["psnr_y"] == pytest.approx(28.42, abs=0.05)  # published 28.42 / 0.8104
    assert bicubic["ssim_y"] == pytest.approx(0.810, abs=0.005)
    nearest = set5_report[0]["methods"]["nearest"]
    assert nearest["psnr_y"] < bicubic["psnr_y"] - 0.5  # a worse method scores worse


@pytest.mark.data
def test_set5_own_bicubic_lr_matches_provided(set5_report: tuple[dict, Path], tmp_path: Path) -> None:
    """Without lr_dir, our MATLAB-compatible imresize must make LR images as good as the provided ones."""
    data = shared_path("benchmarks", "Set5", "x4")
    own = evaluate_sr(data / "HR", tmp_path, 4, {}, None, Options(lpips=False))
    assert own["lr_source"] == "matlab_bicubic" and own["lr_dir"] is None
    provided = set5_report[0]["methods"]["bicubic"]["psnr_y"]
    assert own["methods"]["bicubic"]["psnr_y"] == pytest.approx(provided, abs=0.05)
    assert own["lpips_note"] == "disabled (lpips=false)"


@pytest.mark.data
@pytest.mark.slow
def test_set14_bicubic_matches_published(tmp_path: Path) -> None:
    data = shared_path("benchmarks", "Set14", "x4")
    report = evaluate_sr(data / "HR", tmp_path, 4, {}, data / "LR", Options(lpips=False, grid_images=1))
    assert report["dataset"] == "Set14"
    # published 26.00 / 0.7027; needs the grey-image convention (img_003 is a greyscale file)
    assert report["methods"]["bicubic"]["psnr_y"] == pytest.approx(26.00, abs=0.1)
    assert report["methods"]["bicubic"]["ssim_y"] == pytest.approx(0.7027, abs=0.005)


@pytest.mark.data
def test_report_files_and_schema(set5_report: tuple[dict, Path]) -> None:
    report, out = set5_report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == report
    assert set(on_disk) == {"dataset", "hr_dir", "lr_dir", "lr_source", "scale", "crop_border", "lpips_note", "methods"}
    assert on_disk["dataset"] == "Set5" and on_disk["lr_source"] == "provided"
    assert on_disk["scale"] == 4 and on_disk["crop_border"] == 4
    assert list(on_disk["methods"]) == ["bicubic", "nearest"]
    for method in on_disk["methods"].values():
        assert set(method) == {"psnr_y", "ssim_y", "lpips", "images"}
        assert [im["image"] for im in method["images"]] == [f"img_00{i}.png" for i in range(1, 6)]
        assert method["psnr_y"] == pytest.approx(np.mean([im["psnr_y"] for im in method["images"]]))
        # offline: LPIPS is null everywhere, never a made-up number, and the note says why
        assert method["lpips"] is None and all(im["lpips"] is None for im in method["images"])
    assert "TORCH_HOME" in on_disk["lpips_note"]

    table = (out / "metrics.md").read_text()
    assert "| bicubic |" in table and "| nearest |" in table and "PSNR-Y" in table

    with Image.open(out / "comparison.png") as grid:
        width, height = grid.size
    # 5 rows (images) x 3 columns (HR | bicubic | nearest), cells a couple of hundred pixels
    assert 3 * 150 < width < 3 * 300 and 5 * 150 < height < 5 * 300
    assert not list(out.glob(".*tmp"))  # atomic writes left no temp files


def test_method_names_are_unique() -> None:
    paths = [Path("a/model.safetensors"), Path("b/model.safetensors"), Path("c/bicubic.pth"), Path("a/model.pth")]
    assert method_names(paths) == ["model", "b/model", "c/bicubic", "a/model"]
    assert len(set(method_names([Path("x/m.pth")] * 3))) == 3


def _one_line_error(call, *needles: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def _write_png(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    run = lambda hr, lr=None: evaluate_sr(hr, tmp_path / "out", 4, {}, lr, Options(lpips=False))  # noqa: E731
    _one_line_error(lambda: run(tmp_path / "missing"), str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    _one_line_error(lambda: run(tmp_path / "empty"), str(tmp_path / "empty"))

    for name in ("a.png", "b.png"):
        _write_png(tmp_path / "hr" / name, 32, 32)
    _write_png(tmp_path / "lr_few" / "a.png", 8, 8)
    _one_line_error(lambda: run(tmp_path / "hr", tmp_path / "lr_few"), str(tmp_path / "lr_few"), "1 LR", "2 HR")
    for name in ("a.png", "b.png"):
        _write_png(tmp_path / "lr_bad" / name, 8, 9)
    _one_line_error(lambda: run(tmp_path / "hr", tmp_path / "lr_bad"), str(tmp_path / "lr_bad" / "a.png"), "size")
    assert not (tmp_path / "out" / "metrics.json").exists()

    garbage = tmp_path / "model.pth"
    garbage.write_bytes(b"not a checkpoint")
    msg = _one_line_error(lambda: load_models([garbage], torch.device("cpu")), str(garbage))
    assert msg.startswith(str(garbage))
    _one_line_error(lambda: load_models([tmp_path / "nope.pth"], torch.device("cpu")), "nope.pth", "not found")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.data
@pytest.mark.slow
def test_cli(tmp_path: Path) -> None:
    """The command line, hydra overrides included; hydra writes nothing of its own into the cwd."""
    data = shared_path("benchmarks", "Set5", "x4")
    hr = tmp_path / "HR"
    shutil.copytree(data / "HR", hr)  # one image keeps it quick
    for p in sorted(hr.iterdir())[1:]:
        p.unlink()
    work = tmp_path / "cwd"
    work.mkdir()
    from test_infer import _tiny_export

    ckpt = _tiny_export(tmp_path / "models" / "tiny")
    args = [f"ckpt=[{ckpt},{ckpt}]", f"hr_dir={hr}", "scale=4", "out_dir=report", "lpips=false", "device=cpu"]
    done = _cli(*args, "tile=64", "tile_overlap=8", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "| bicubic |" in done.stdout and "metrics.json" in done.stdout
    assert sorted(p.name for p in work.iterdir()) == ["report"]  # no outputs/, .hydra/ or log file
    assert {p.name for p in (work / "report").iterdir()} == {"metrics.json", "metrics.md", "comparison.png"}
    report = json.loads((work / "report" / "metrics.json").read_text())
    assert report["lr_source"] == "matlab_bicubic"
    assert list(report["methods"]) == ["bicubic", "tiny", "models/tiny"]  # the same file twice: disambiguated
    assert report["methods"]["tiny"] == report["methods"]["models/tiny"]

    failed = _cli(f"hr_dir={tmp_path / 'nowhere'}", "out_dir=report", cwd=work)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: HR folder not found"]


def test_report_task_comes_from_the_checkpoints() -> None:
    from omegaconf import OmegaConf

    from restoregan.evaluation.run import report_task
    from restoregan.gans.checkpoint import LoadedGenerator

    def model(task: str) -> LoadedGenerator:
        return LoadedGenerator(nn.Identity(), 1, task, None, "test")

    cfg = lambda task=None: OmegaConf.create({"task": task})  # noqa: E731
    assert report_task(cfg(), {}, []) == "sr"  # baseline-only report, default task
    assert report_task(cfg("interp"), {}, []) == "interp"
    assert report_task(cfg(), {"a": model("colorize")}, [Path("a.ckpt")]) == "colorize"
    with pytest.raises(ValueError, match="a.ckpt: a 'colorize' model, but task=sr"):
        report_task(cfg("sr"), {"a": model("colorize")}, [Path("a.ckpt")])
    with pytest.raises(ValueError, match="different tasks"):
        report_task(cfg(), {"a": model("sr"), "b": model("interp")}, [Path("a"), Path("b")])
    with pytest.raises(ValueError, match="unknown task 'deblur'"):
        report_task(cfg("deblur"), {}, [])
