"""Model files are data, never code: every crafted file below tries to create a marker file when loaded the
unsafe way (unpickled, or its description built by Hydra), and every entry point that takes a model file must
refuse it in one line naming the file, with the marker absent and nothing written.

Hostile files (tests/hostile_utils.py): pickle payloads in .pth/.pt/.ckpt, a train.py-like .ckpt with a payload
in its hyperparameters, descriptions (safetensors metadata, the yaml beside, the `restoregan` dict of a .ckpt)
with nested `_target_`s, Hydra `_args_`, or a generator `_target_` outside restoregan.gans, and payloads planted
in $TORCH_HOME under the names of the published backbone files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cli_utils import ROOT, compose_conf, infer_in_process
from hostile_utils import HOSTILE_MODELS, lightning_with_payload, plant_backbone
from restoregan import cli
from restoregan.pretrained import FID_INCEPTION_URL, WeightsHashError
from train_utils import compose_train, tiny_overrides


@pytest.fixture(autouse=True)
def torch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache of our own and no network: a test never reaches the real cache or the internet."""
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() then follows TORCH_HOME

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return home


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 32x32 photos-to-be: inputs of infer and evaluate, frames of the pipeline."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"frame{i:02d}.png")
    return folder


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def assert_refused(run: Callable[[], object], named: Path, marker: Path, watched: Path) -> str:
    """`run` fails with an error whose one-line form (what the scripts print) names `named` and is a user error,
    not a crash; the payload did not run; nothing new appeared under `watched`."""
    before = files_under(watched)
    with pytest.raises(Exception) as info:
        run()
    message = cli.one_line(info.value)
    assert not marker.exists(), f"the payload ran: {message}"
    assert str(named) in message and cli.TRACEBACK_ENV not in message, message
    assert files_under(watched) == before, sorted(files_under(watched) - before)
    return message


# --- infer.py ckpt= : every hostile model file ------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(HOSTILE_MODELS))
def test_infer_refuses_hostile_model_file(kind: str, tmp_path: Path, images: Path) -> None:
    marker = tmp_path / "MARKER"
    given, named = HOSTILE_MODELS[kind](tmp_path, marker)
    out = tmp_path / "out"

    def run() -> None:
        with pytest.raises(ValueError) as info:  # the loader's own message, already one line
            infer_in_process([f"ckpt={given}", f"input={images}", f"output={out}"])
        assert "\n" not in str(info.value)
        raise info.value

    message = assert_refused(run, named, marker, tmp_path)
    assert not out.exists()
    assert "not allowed" in message or "not loaded for safety" in message, message


# --- every other entry point that takes a model file -------------------------------------------------------
def run_evaluate(model: Path, tmp: Path, images: Path) -> None:
    from restoregan.evaluation.run import evaluate

    evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={images}", f"out_dir={tmp / 'report'}",
                                       "lpips=false", "device=cpu"]))


def run_pipeline_stage(model: Path, tmp: Path, images: Path) -> None:
    infer_in_process(["pipeline=film", f"input={images}", f"output={tmp / 'film.mp4'}", "pipeline.order=[upscale]",
                      f"stages.upscale.ckpt={model}", f"pipeline.runs_dir={tmp / 'no_runs'}"])


def run_init_from(model: Path, tmp: Path, images: Path) -> None:
    from restoregan.training.run import train

    train(compose_train(tiny_overrides(tmp / "run") + [f"init_from={model}"]))


ENTRY_POINTS = {"evaluate": run_evaluate, "pipeline_stage": run_pipeline_stage, "init_from": run_init_from}
# one of each way in: an unpickling .ckpt, safetensors metadata, the yaml beside, a .ckpt's description
REPRESENTATIVE = ["lightning.ckpt", "metadata-nested-write_text", "yaml-target-file_handler",
                  "ckpt-description-nested-open"]


@pytest.mark.parametrize("kind", REPRESENTATIVE)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_point_refuses_hostile_model_file(entry: str, kind: str, tmp_path: Path, images: Path) -> None:
    marker = tmp_path / "MARKER"
    given, named = HOSTILE_MODELS[kind](tmp_path, marker)
    assert_refused(lambda: ENTRY_POINTS[entry](given, tmp_path, images), named, marker, tmp_path)


@pytest.mark.parametrize("kind", ["yaml-nested-savetxt", "yaml-target-file_handler", "yaml-args-open"])
def test_pipeline_refuses_hostile_export_it_finds_in_runs(kind: str, tmp_path: Path, images: Path) -> None:
    """pipeline=film takes the newest export under runs/ without it being named: the same checks apply."""
    runs, marker = tmp_path / "runs", tmp_path / "MARKER"
    export_dir = runs / "downloaded" / "export"
    export_dir.mkdir(parents=True)
    _, named = HOSTILE_MODELS[kind](export_dir, marker)
    assert named.suffix == ".yaml"
    assert_refused(
        lambda: infer_in_process(["pipeline=film", f"input={images}", f"output={tmp_path / 'film.mp4'}",
                                  "pipeline.order=[upscale]", f"pipeline.runs_dir={runs}"]),
        named, marker, tmp_path)


@pytest.mark.parametrize("kind", ["pickle.ckpt", "lightning.ckpt"])
def test_resume_refuses_pickled_checkpoint(kind: str, tmp_path: Path) -> None:
    """train.py ckpt_path=: Lightning's own loader must read weights-only too."""
    from restoregan.training.run import train

    marker = tmp_path / "MARKER"
    given, named = HOSTILE_MODELS[kind](tmp_path, marker)
    message = assert_refused(
        lambda: train(compose_train(tiny_overrides(tmp_path / "run") + [f"ckpt_path={given}"])), named, marker, tmp_path)
    # why, not torch's advice on how to load it unsafely ("This file can still be loaded, ...")
    assert "not loaded for safety" in message and "can still be loaded" not in message, message


# --- pretrained backbones planted in $TORCH_HOME -------------------------------------------------------------
def test_planted_lpips_backbone_stops_evaluate(tmp_path: Path, images: Path, torch_home: Path) -> None:
    """A plain evaluate.py (no model, LPIPS on): the file the offline message asks for is checked, not run."""
    from restoregan.evaluation.run import evaluate

    marker = tmp_path / "MARKER"
    planted = plant_backbone(torch_home, torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url, marker)
    out = tmp_path / "report"
    cfg = compose_conf("evaluate", [f"hr_dir={images}", f"out_dir={out}", "lpips=true", "lpips_net=alex",
                                    "device=cpu", "task=sr", "task.scale=2"])
    message = assert_refused(lambda: evaluate(cfg), planted, marker, tmp_path)
    assert "does not match the published" in message and torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url in message
    assert not out.exists() or not files_under(out)


@pytest.mark.parametrize("net", ["vgg", "squeeze"])
def test_planted_lpips_backbones(net: str, tmp_path: Path, torch_home: Path) -> None:
    from restoregan.metrics.lpips import BACKBONE_URLS, LPIPS

    marker = tmp_path / "MARKER"
    planted = plant_backbone(torch_home, BACKBONE_URLS[net], marker)
    assert_refused(lambda: LPIPS(net=net), planted, marker, tmp_path)


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        (["loss=esrgan"], torchvision.models.VGG19_Weights.IMAGENET1K_V1.url),  # perceptual loss
        (["experiment=colorize_quickstart"], torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url),  # encoder
    ],
    ids=["vgg19_perceptual", "resnet18_encoder"],
)
def test_planted_backbone_stops_training(overrides: list[str], url: str, tmp_path: Path, torch_home: Path) -> None:
    from restoregan.training.run import train

    marker = tmp_path / "MARKER"
    planted = plant_backbone(torch_home, url, marker)
    experiment = [o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")]
    cfg = compose_train(tiny_overrides(tmp_path / "run", *experiment)
                        + [o for o in overrides if not o.startswith("experiment=")] + ["pretrained_backbones=true"])
    message = assert_refused(lambda: train(cfg), planted, marker, tmp_path)
    assert url in message


def test_planted_fid_inception_is_refused(tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FID's Inception goes through the same check (torch-fidelity itself would unpickle it unchecked); with
    torch-fidelity present, a planted file stops the report instead of being read."""
    import torchmetrics.utilities.imports

    from restoregan.metrics.color import FID

    monkeypatch.setattr(torchmetrics.utilities.imports, "_TORCH_FIDELITY_AVAILABLE", True)
    marker = tmp_path / "MARKER"
    planted = plant_backbone(torch_home, FID_INCEPTION_URL, marker)
    with pytest.raises(WeightsHashError) as info:
        FID.create(torch.device("cpu"))
    assert not marker.exists() and str(planted) in str(info.value) and "\n" not in str(info.value)


# --- the real scripts: one line on stderr, non-zero exit ----------------------------------------------------
def run_script(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_infer_script_answers_hostile_checkpoint_in_one_line(tmp_path: Path, images: Path) -> None:
    marker, out = tmp_path / "MARKER", tmp_path / "out"
    given, _ = lightning_with_payload(tmp_path, marker)
    result = run_script(["infer.py", f"ckpt={given}", f"input={images}", f"output={out}", "device=cpu"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and not marker.exists() and not out.exists()
    assert len(lines) == 1 and lines[0].startswith(f"error: {given}: "), result.stderr
    assert "not loaded for safety" in lines[0]


def test_evaluate_script_answers_planted_backbone_in_one_line(tmp_path: Path, images: Path) -> None:
    home, marker, out = tmp_path / "torch_home", tmp_path / "MARKER", tmp_path / "report"
    planted = plant_backbone(home, torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url, marker)
    result = run_script(["evaluate.py", f"hr_dir={images}", f"out_dir={out}", "task=sr", "task.scale=2", "device=cpu",
                         "lpips=true"],
                        env={"TORCH_HOME": str(home)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and not marker.exists() and (not out.exists() or not files_under(out))
    assert len(lines) == 1 and lines[0].startswith(f"error: {planted}: "), result.stderr
