"""evaluate.py: reproduces the published bicubic baselines, writes the report, fails clearly on bad input; the one
evaluation loop (restoregan.evaluation.loop) for any task, and the temporal report (result=)."""

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

from cli_utils import compose_conf
from conftest import ROOT, shared_path
from restoregan.evaluation.loop import evaluate_models
from restoregan.tasks.base import finite_mean
from restoregan.evaluation.run import evaluate, load_models, method_names, report_task
from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.models import Model
from restoregan.tasks.base import RunOptions
from restoregan.tasks.sr import SuperResolutionTask


class NearestUpscaler(nn.Module):
    """Stands in for a generator: nearest neighbour, one (unused) parameter so it has a device."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest") + self.dummy


def model(net: nn.Module, name: str = "nearest", scale: int = 4, task=None) -> Model:
    """A loaded model as restoregan.models.load_model describes one."""
    return Model(net.eval(), task or SuperResolutionTask(scale), scale, 3, 3, 1, Path(f"{name}.pth"), "test", None)


def sr_report(hr: Path, out: Path, models: dict[str, Model], lr: Path | None = None, *overrides: str,
              task=None, tile: int | None = None) -> dict:
    """The evaluation loop on an SR folder, evaluate.py's config and defaults."""
    args = [f"hr_dir={hr}", f"out_dir={out}", *([f"lr_dir={lr}"] if lr else []), *overrides]
    cfg = compose_conf("evaluate", args)
    return evaluate_models(task or SuperResolutionTask(4), models, cfg, RunOptions(tile=tile))


def tiny_sr_export(path: Path, scale: int = 4) -> Path:
    """A small RRDBNet exported the way train.py does (format 2: the task's config stored)."""
    from restoregan.gans.rrdbnet import RRDBNet

    kwargs = {"num_in_ch": 3, "num_out_ch": 3, "scale": scale, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    torch.manual_seed(0)
    meta = {"task": SuperResolutionTask(scale).config(), "scale": scale}
    return save_export(path, RRDBNet(**kwargs), {"_target_": "restoregan.gans.rrdbnet.RRDBNet", **kwargs}, meta)


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
    report = sr_report(data / "HR", out, {"nearest": model(NearestUpscaler())}, data / "LR", tile=64)
    return report, out


@pytest.mark.data
def test_set5_bicubic_matches_published(set5_report: tuple[dict, Path]) -> None:
    bicubic = set5_report[0]["methods"]["bicubic"]
    assert bicubic["psnr"] == pytest.approx(28.42, abs=0.05)  # published 28.42 / 0.8104 (PSNR-Y / SSIM-Y)
    assert bicubic["ssim"] == pytest.approx(0.810, abs=0.005)
    nearest = set5_report[0]["methods"]["nearest"]
    assert nearest["psnr"] < bicubic["psnr"] - 0.5  # a worse method scores worse


@pytest.mark.data
def test_set5_own_bicubic_lr_matches_provided(set5_report: tuple[dict, Path], tmp_path: Path) -> None:
    """Without lr_dir, our MATLAB-compatible imresize must make LR images as good as the provided ones."""
    data = shared_path("benchmarks", "Set5", "x4")
    own = sr_report(data / "HR", tmp_path, {}, None, "lpips=false")
    assert own["lr_source"] == "matlab_bicubic" and own["lr_dir"] is None
    provided = set5_report[0]["methods"]["bicubic"]["psnr"]
    assert own["methods"]["bicubic"]["psnr"] == pytest.approx(provided, abs=0.05)
    assert own["lpips_note"] == "disabled (lpips=false)"


@pytest.mark.data
@pytest.mark.slow
def test_set14_bicubic_matches_published(tmp_path: Path) -> None:
    data = shared_path("benchmarks", "Set14", "x4")
    report = sr_report(data / "HR", tmp_path, {}, data / "LR", "lpips=false", "grid_images=1")
    assert report["dataset"] == "Set14"
    # published 26.00 / 0.7027; needs the grey-image convention (img_003 is a greyscale file)
    assert report["methods"]["bicubic"]["psnr"] == pytest.approx(26.00, abs=0.1)
    assert report["methods"]["bicubic"]["ssim"] == pytest.approx(0.7027, abs=0.005)


@pytest.mark.data
def test_report_files_and_schema(set5_report: tuple[dict, Path]) -> None:
    report, out = set5_report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == report
    assert set(on_disk) == {"dataset", "hr_dir", "lr_dir", "lr_source", "task", "scale", "crop_border", "lpips_note",
                            "methods"}
    assert on_disk["dataset"] == "Set5" and on_disk["lr_source"] == "provided" and on_disk["task"] == "sr"
    assert on_disk["scale"] == 4 and on_disk["crop_border"] == 4
    assert list(on_disk["methods"]) == ["bicubic", "nearest"]
    for method in on_disk["methods"].values():
        assert set(method) == {"psnr", "ssim", "lpips", "images"}
        assert [im["image"] for im in method["images"]] == [f"img_00{i}.png" for i in range(1, 6)]
        assert method["psnr"] == pytest.approx(np.mean([im["psnr"] for im in method["images"]]))
        # offline: LPIPS is null everywhere, never a made-up number, and the note says why
        assert method["lpips"] is None and all(im["lpips"] is None for im in method["images"])
    assert "TORCH_HOME" in on_disk["lpips_note"]

    table = (out / "metrics.md").read_text()
    assert "| bicubic |" in table and "| nearest |" in table and "PSNR-Y" in table
    assert table.startswith("### Set5 x4 (LR: provided, crop_border=4)") and "LPIPS: " in table

    with Image.open(out / "comparison.png") as grid:
        width, height = grid.size
    # 5 rows (images) x 3 columns (HR | bicubic | nearest), cells a couple of hundred pixels
    assert 3 * 150 < width < 3 * 300 and 5 * 150 < height < 5 * 300
    assert not list(out.glob(".*tmp"))  # atomic writes left no temp files


def test_method_names_are_unique() -> None:
    paths = [Path("a/model.safetensors"), Path("b/model.safetensors"), Path("c/bicubic.pth"), Path("a/model.pth")]
    assert method_names(paths) == ["model", "b/model", "bicubic", "a/model"]
    assert len(set(method_names([Path("x/m.pth")] * 3))) == 3


def _one_line_error(call, *needles: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def _write_png(path: Path, h: int, w: int, seed: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((h, w, 3), np.uint8) if seed is None else \
        np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    def run(hr: Path, lr: Path | None = None) -> dict:
        args = ["task=sr", f"hr_dir={hr}", f"out_dir={tmp_path / 'out'}", "lpips=false", "device=cpu"]
        return evaluate(compose_conf("evaluate", args + ([f"lr_dir={lr}"] if lr else [])))

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
    load = lambda ckpt: load_models(compose_conf("evaluate", [f"ckpt={ckpt}"]), torch.device("cpu"))  # noqa: E731
    msg = _one_line_error(lambda: load(garbage), str(garbage))
    assert msg.startswith(str(garbage))
    _one_line_error(lambda: load(tmp_path / "nope.pth"), "nope.pth", "not found")


def test_a_report_without_models_needs_a_task(tmp_path: Path) -> None:
    _write_png(tmp_path / "hr" / "a.png", 32, 32)
    cfg = compose_conf("evaluate", [f"hr_dir={tmp_path / 'hr'}", f"out_dir={tmp_path / 'out'}", "lpips=false"])
    _one_line_error(lambda: evaluate(cfg), "task=<name> is needed", "ckpt=")
    assert not (tmp_path / "out").exists()


def test_models_must_share_one_task_and_match_task_option(tmp_path: Path) -> None:
    """An x2 and an x4 model cannot share a report; task= must be the models' task; its options reach them."""
    x2, x4 = tiny_sr_export(tmp_path / "m2", 2), tiny_sr_export(tmp_path / "m4", 4)
    cfg = lambda *a: compose_conf("evaluate", [f"out_dir={tmp_path / 'out'}", *a])  # noqa: E731
    cpu = torch.device("cpu")
    mixed = cfg(f"ckpt=[{x2},{x4}]")
    msg = _one_line_error(lambda: report_task(mixed, load_models(mixed, cpu)), str(x2), str(x4),
                          "cannot share a report")
    assert msg.startswith(str(x4))
    # the options of task= that change something are laid over each file's task: task=sr alone (its yaml's
    # defaults) keeps an x2 model x2, an x3 option on an x2 network is refused naming the file
    plain = cfg(f"ckpt={x2}", "task=sr")
    assert report_task(plain, load_models(plain, cpu)).scale == 2
    with pytest.raises(CheckpointError, match=f"^{x2}: task.scale=3: the model file says 2"):
        load_models(cfg(f"ckpt={x2}", "task=sr", "task.scale=3"), cpu)
    same = cfg(f"ckpt={x2}", "task=sr", "task.scale=2")
    assert report_task(same, load_models(same, cpu)).scale == 2
    # a task= of another class: refused before its options are tried on the model
    other = cfg(f"ckpt={x4}", "task=sr", "task._target_=restoregan.tasks.image.ImageToImageTask")
    _one_line_error(lambda: load_models(other, cpu), str(x4), "restoregan.tasks.sr.SuperResolutionTask",
                    "task= chose restoregan.tasks.image.ImageToImageTask")


def test_a_model_named_like_a_baseline_or_producing_the_wrong_size_is_refused(tmp_path: Path) -> None:
    _write_png(tmp_path / "hr" / "a.png", 32, 32, seed=0)
    named = {"bicubic": model(NearestUpscaler(), "bicubic")}
    _one_line_error(lambda: sr_report(tmp_path / "hr", tmp_path / "out", named, None, "lpips=false"),
                    "bicubic.pth", "baseline", "rename")
    wrong = model(NearestUpscaler(2), "half", scale=2, task=SuperResolutionTask(4))  # an x2 model, an x4 task
    _one_line_error(lambda: sr_report(tmp_path / "hr", tmp_path / "out", {"half": wrong}, None, "lpips=false"),
                    "half.pth: produced 16x16 for a.png, whose target is 32x32")
    assert not (tmp_path / "out").exists()


def test_means_skip_non_finite_values_and_are_null_when_any_item_has_none() -> None:
    assert finite_mean([30.0, float("inf"), 32.0]) == 31.0  # identical frames: PSNR inf says nothing
    assert finite_mean([0.1, None]) is None
    assert finite_mean([float("inf")]) is None


class CountingTask(SuperResolutionTask):
    """SR plus a set metric: the number of items each method was fed with (or none, with a reason)."""

    def __init__(self, available: bool) -> None:
        super().__init__(4)
        self.available = available

    def set_metrics(self, device: torch.device) -> tuple[dict, str | None]:
        class Count:
            def __init__(self) -> None:
                self.real, self.fake = 0, 0

            def update(self, image: np.ndarray, real: bool) -> None:
                assert image.shape == (32, 32, 3)
                self.real, self.fake = self.real + real, self.fake + (not real)

            def compute(self) -> float:
                return float(self.fake) if self.real == self.fake else -1.0

        return ({"count": Count()}, None) if self.available else ({"count": None}, "switched off (test)")


def test_loop_scores_with_lpips_and_set_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LPIPS computed (random backbone, the plumbing only) per item; a task's set metric fed every item once per
    method; a missing one null with its note in metrics.json and metrics.md."""
    from restoregan.evaluation import loop
    from restoregan.metrics.lpips import LPIPS

    for i in range(3):
        _write_png(tmp_path / "hr" / f"{i}.png", 32, 32, seed=i)
    monkeypatch.setattr(loop, "load_lpips", lambda cfg, device: (LPIPS(net="alex", pretrained=False), None))
    report = sr_report(tmp_path / "hr", tmp_path / "a", {"nearest": model(NearestUpscaler())}, None,
                       task=CountingTask(True))
    for method in report["methods"].values():
        values = [im["lpips"] for im in method["images"]]
        assert all(isinstance(v, float) and v > 0 for v in values)
        assert method["lpips"] == pytest.approx(np.mean(values))
        assert method["count"] == 3.0
    assert report["lpips_note"] is None and report["count_note"] is None

    off = sr_report(tmp_path / "hr", tmp_path / "b", {}, None, "lpips=false", task=CountingTask(False))
    assert off["methods"]["bicubic"]["count"] is None and off["count_note"] == "switched off (test)"
    assert "COUNT: switched off (test)" in (tmp_path / "b" / "metrics.md").read_text()


def test_temporal_report_is_selected_by_result(tmp_path: Path) -> None:
    """input= and result= (two frame folders): the flicker report, no model; a model or task= is refused."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(np.roll(base, i, axis=1)).save((tmp_path / "in").mkdir(exist_ok=True) or
                                                       tmp_path / "in" / f"{i:03d}.png")
        noisy = np.clip(np.roll(base, i, axis=1) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save((tmp_path / "out").mkdir(exist_ok=True) or tmp_path / "out" / f"{i:03d}.png")
    args = [f"input={tmp_path / 'in'}", f"result={tmp_path / 'out'}", f"out_dir={tmp_path / 'report'}"]
    report = evaluate(compose_conf("evaluate", args))
    assert report["task"] == "temporal" and report["pairs"] == 2 and report["relative"] > 1  # noise: flicker added
    _one_line_error(lambda: evaluate(compose_conf("evaluate", [*args, "ckpt=m.pth"])), "ckpt=", "leave ckpt= out")
    _one_line_error(lambda: evaluate(compose_conf("evaluate", [*args, "task=sr"])), "task=", "leave task= out")


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
    ckpt = tiny_sr_export(tmp_path / "models" / "tiny")
    args = [f"ckpt=[{ckpt},{ckpt}]", f"hr_dir={hr}", "out_dir=report", "lpips=false", "device=cpu"]
    done = _cli(*args, "tile=64", "tile_overlap=8", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "| bicubic |" in done.stdout and "metrics.json" in done.stdout
    assert sorted(p.name for p in work.iterdir()) == ["report"]  # no outputs/, .hydra/ or log file
    assert {p.name for p in (work / "report").iterdir()} == {"metrics.json", "metrics.md", "comparison.png"}
    report = json.loads((work / "report" / "metrics.json").read_text())
    assert report["lr_source"] == "matlab_bicubic"
    assert list(report["methods"]) == ["bicubic", "tiny", "models/tiny"]  # the same file twice: disambiguated
    assert report["methods"]["tiny"] == report["methods"]["models/tiny"]

    failed = _cli("task=sr", f"hr_dir={tmp_path / 'nowhere'}", "out_dir=report", cwd=work)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: HR folder not found"]
