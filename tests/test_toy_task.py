"""A new task costs only its own files: tests/toy_denoise.py (one task module) and tests/conf/task/denoise.yaml
are trained, evaluated against their baseline, applied by infer.py to an image and to a video, and used as a
film-pipeline stage, through the project's unchanged entry points and configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from cli_utils import compose_conf, infer_in_process, photo_folder
from pipeline_utils import moving_clip, streams, write_clip
from restoregan.data.io import read_image
from restoregan.models import load_model
from restoregan.tasks.base import RunOptions
from train_utils import compose_train

TOY_CONF = Path(__file__).parent / "conf"
SEARCHPATH = f"hydra.searchpath=[file://{TOY_CONF}]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A denoiser trained for a few steps with task=denoise; returns its export."""
    from restoregan.training.run import train

    run_dir = tmp_path_factory.mktemp("toy") / "run"
    cfg = compose_train([
        SEARCHPATH, "task=denoise", "generator=restore_unet_small", "discriminator=patch_small", "loss=pixel",
        # the default data (scikit-image photos) with the toy's degradation instead of bicubic downscaling
        "data.train.degradation._target_=toy_denoise.GaussianNoise", "~data.train.degradation.scale",
        "+data.train.degradation.sigma=0.1",
        f"run_dir={run_dir}", "logger=csv", "pretrain_iters=3", "gan_iters=0", "val_every=3",
        "data.crop_size=32", "data.batch_size=2", "data.num_workers=0", "data.val.crop_size=32",
        "pretrained_backbones=false", "trainer.accelerator=cpu", "+trainer.enable_progress_bar=false",
    ])
    result = train(cfg)
    return result.export.with_suffix(".safetensors")


@pytest.fixture(autouse=True)
def trust_toy_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model files may name task classes of restoregan.tasks, and of the modules the user names here."""
    monkeypatch.setenv("RESTOREGAN_TASK_MODULES", "toy_denoise")


def test_export_names_the_toy_task(trained: Path) -> None:
    from toy_denoise import DenoiseTask

    model = load_model(trained)
    assert isinstance(model.task, DenoiseTask) and model.task.sigma == 0.1 and model.scale == 1


def test_untrusted_task_module_is_refused(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTOREGAN_TASK_MODULES")
    with pytest.raises(ValueError, match="task._target_: toy_denoise.DenoiseTask is not allowed"):
        load_model(trained)


def test_evaluate_scores_the_toy_against_its_baseline(trained: Path, tmp_path: Path) -> None:
    from restoregan.evaluation.run import evaluate

    photos = photo_folder(tmp_path / "photos", n=2)
    report = evaluate(compose_conf("evaluate", [SEARCHPATH, f"ckpt={trained}", f"hr_dir={photos}",
                                                f"out_dir={tmp_path / 'eval'}", "lpips=false", "device=cpu"]))
    assert list(report["methods"]) == ["noisy", trained.stem]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["methods"]["noisy"]["psnr"] == pytest.approx(report["methods"]["noisy"]["psnr"])
    # the baseline's PSNR recomputed independently (scikit-image) from the noise the task promises
    expected = []
    for i, path in enumerate(sorted(photos.iterdir())):
        clean = read_image(path)
        noisy = np.clip(clean + np.random.default_rng([0, i]).normal(0, 0.1, clean.shape).astype(np.float32), 0, 1)
        to8 = lambda a: np.round(np.clip(a, 0, 1) * 255) / 255  # noqa: E731
        expected.append(peak_signal_noise_ratio(to8(clean).astype(np.float64), to8(noisy).astype(np.float64),
                                                data_range=1.0))
    assert report["methods"]["noisy"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert 15 < report["methods"]["noisy"]["psnr"] < 25  # sigma 0.1: about 20 dB
    assert (tmp_path / "eval" / "comparison.png").is_file() and (tmp_path / "eval" / "metrics.md").is_file()


def test_infer_applies_the_toy_to_an_image(trained: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", n=1)
    [out] = infer_in_process([SEARCHPATH, f"ckpt={trained}", f"input={photos / 'photo0.png'}",
                              f"output={tmp_path / 'out'}", "tile=null"])
    assert out == tmp_path / "out" / "photo0_denoised.png"
    model = load_model(trained)
    x = torch.from_numpy(read_image(photos / "photo0.png")).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = model.net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(read_image(out) - expected).max() <= 1 / 255 + 1e-6  # written as 8-bit PNG


def test_infer_on_video_and_as_a_pipeline_stage(trained: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", moving_clip(6), fps=12, audio="aac")
    before = streams(clip)
    [video] = infer_in_process([SEARCHPATH, f"ckpt={trained}", f"input={clip}", f"output={tmp_path / 'out'}",
                                "video.contact_frames=0"])
    assert video == tmp_path / "out" / "clip_denoised.mp4"
    after = streams(video)
    assert after["frames"] == before["frames"] and after["audio"] is not None
    assert after["times"] == pytest.approx(before["times"], abs=1e-6)
    assert after["audio"]["end"] == pytest.approx(before["audio"]["end"], abs=1 / 12)

    # the same model as the one stage of a film pipeline, a stage name the film config does not know
    film = tmp_path / "film.mp4"
    infer_in_process([SEARCHPATH, "pipeline=film", f"input={clip}", f"output={film}", "pipeline.order=[denoise]",
                      f"+stages.denoise.ckpt={trained}", f"pipeline.runs_dir={tmp_path / 'none'}",
                      "video.contact_frames=0"])
    assert streams(film)["frames"] == before["frames"]
    model = load_model(trained)
    assert model.task.apply_batch(model, torch.rand(1, 3, 16, 16), RunOptions()).shape == (1, 3, 16, 16)
