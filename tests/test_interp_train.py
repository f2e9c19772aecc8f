"""Frame interpolation through the shared trainer: both experiments train a few steps, the pixel-only model
is one override away, exports reload as `interp` models, the task's baselines and metrics are right."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.gans.restore_unet import RestoreUNet
from restoregan.models import load_model
from restoregan.tasks.base import RunOptions
from restoregan.tasks.interp import InterpolationTask
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def _interp_overrides(tmp_path: Path, experiment: str) -> list[str]:
    # tiny_overrides' data.val.crop_size applies to the synthetic val set too; repeat shrinks the epoch
    return tiny_overrides(tmp_path, experiment) + ["pretrain_iters=1", "gan_iters=1", "data.val.repeat=1"]


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("experiment", ["interp_quickstart", "interp"])
def test_interp_experiments_train_a_few_steps(experiment: str, tmp_path: Path) -> None:
    overrides = _interp_overrides(tmp_path, experiment)
    if experiment == "interp":
        overrides.append("generator=interp_small")  # the full net's architecture is covered by test_models
    result = train(compose_train(overrides))
    assert int(result.module.iteration) == 2
    assert type(result.module.net_d).__name__ == "TemporalPatchDiscriminator"
    rows = _rows(tmp_path)
    phases = {float(r["train/phase"]) for r in rows if r.get("train/phase")}
    assert phases == {1.0, 3.0}
    for key in ("train/g_pix", "train/g_lap", "train/g_census", "train/g_adv", "train/d_real", "val/psnr",
                "val/psnr_blend", "val/psnr_repeat", "val/ssim"):
        assert any(r.get(key) for r in rows), key
    loaded = load_model(f"{result.export}.safetensors")
    assert isinstance(loaded.task, InterpolationTask) and loaded.scale == 1
    f0, f1 = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(loaded.net(f0, f1, 0.5), result.module.net_g_eval.cpu()(f0, f1, 0.5), atol=1e-5)
    grid = sorted((tmp_path / "images").glob("val_iter*.png"))[-1]
    from PIL import Image

    assert Image.open(grid).size[0] == 5 * 32  # frame0 | blend | interpolated | ground truth | frame1


@pytest.mark.parametrize("override", ["~discriminator", "loss.adversarial=null"])
def test_pixel_only_model_is_one_override_away(override: str, tmp_path: Path) -> None:
    result = train(compose_train(_interp_overrides(tmp_path, "interp_quickstart") + [override]))
    assert not result.module.has_gan
    assert int(result.module.iteration) == 2  # pretrain + gan iterations, all generator-only
    rows = _rows(tmp_path)
    assert {float(r["train/phase"]) for r in rows if r.get("train/phase")} == {1.0}
    assert not any(r.get("train/d_loss") for r in rows)


def test_task_baselines_metrics_and_discriminator_pair() -> None:
    task = InterpolationTask()
    f0, f1, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    batch = {"frame0": f0, "frame1": f1, "gt": gt, "t": torch.tensor([0.5, 0.25])}
    base = task.baselines(batch)
    assert torch.equal(base["repeat"], f0)
    assert torch.allclose(base["blend"][1], 0.75 * f0[1] + 0.25 * f1[1])
    real, fake = task.discriminator_pair(batch, gt * 0)
    assert real.shape == (2, 9, 16, 16) and torch.equal(real[:, 3:6], gt) and torch.equal(fake[:, :3], f0)
    assert InterpolationTask().scale == 1 and InterpolationTask().config() == {
        "_target_": "restoregan.tasks.interp.InterpolationTask"}  # application options are not the model's


@pytest.mark.parametrize("kwargs, key", [
    ({"factor": 1}, "task.factor=1"), ({"factor": 2.5}, "task.factor=2.5"), ({"fps": 0}, "task.fps=0"),
    ({"fps": "fast"}, "task.fps=fast"), ({"step": 0}, "task.step=0"), ({"max_triplets": 0}, "task.max_triplets=0"),
    ({"scene_cut": {"hist": 0.3}}, "task.scene_cut.hist"), ({"drop_duplicates": "yes"}, "task.drop_duplicates"),
])
def test_bad_options_are_refused_in_one_line_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError) as err:
        InterpolationTask(**kwargs)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_options_set_the_output_name_and_the_stage_rate() -> None:
    class Model:
        net = None

    run = RunOptions()
    x4, fps = InterpolationTask(factor=4), InterpolationTask(factor=1, fps=59.94)  # fps set: factor unused
    assert x4.output_suffix == "_x4" and fps.output_suffix == "_59.94fps"
    assert x4.stage("interpolate", Model(), run).rate(Fraction(24)) == 96
    assert fps.stage("interpolate", Model(), run).rate(Fraction(24)) == Fraction(5994, 100)
    assert x4.sequence([]) is True
    with pytest.raises(ValueError, match="needs a video or a folder of frames"):
        x4.apply_batch(Model(), torch.rand(1, 3, 8, 8), run)


def test_only_an_interpolation_network_serves_the_task(tmp_path: Path) -> None:
    """A file saying `interp` around an image-to-image network is refused on loading, in one line."""
    arch = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 4, "num_levels": 1, "num_conv": 1}
    net = RestoreUNet(**{k: v for k, v in arch.items() if k != "_target_"})
    path = save_export(tmp_path / "m", net, arch, {"task": InterpolationTask().config(), "scale": 1})
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert msg.startswith(str(path.with_suffix(".yaml"))) and "RestoreUNet" in msg and "InterpolationNet" in msg and "\n" not in msg


def test_frame_scores_match_references() -> None:
    """PSNR against its definition on 8-bit values; SSIM against the project's reference ssim_y."""
    from restoregan.data.io import quantize
    from restoregan.metrics.image import ssim_y

    gen = torch.Generator().manual_seed(0)
    a = quantize(torch.rand(2, 3, 24, 30, generator=gen))
    b = quantize((a + 0.05 * torch.randn(2, 3, 24, 30, generator=gen)).clamp(0, 1))
    scores = InterpolationTask().metrics(a, {"gt": b})
    assert scores["psnr"].shape == (2,) and scores["psnr"].dtype == torch.float64
    mse = ((a * 255 - b * 255) ** 2).double().mean(dim=(1, 2, 3))
    assert torch.allclose(scores["psnr"], 10 * torch.log10(255.0**2 / mse))
    assert torch.allclose(scores["ssim"], ssim_y(a, b, 0).cpu(), atol=1e-9)
