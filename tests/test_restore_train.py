"""Film restoration through the shared trainer: each schedule phase for a step, both experiments, export."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from restoregan.gans.restore_unet import RestoreUNet
from restoregan.inference.tiled import apply_tiled
from restoregan.models import load_model
from restoregan.tasks.restore import RestorationTask, median3
from restoregan.training.run import train
from test_colorize_train import _same, _Snapshots
from train_utils import compose_train, tiny_overrides


def _overrides(run_dir: Path, experiment: str) -> list[str]:
    return tiny_overrides(run_dir, experiment) + [
        "data.train.repeat=2", "model.grid_images=1", "data.train.optional_sources=[]", "data.train.cache=false",
        "pretrain_iters=1", "d_pretrain_iters=1", "gan_iters=1", "val_every=3",
    ]


@pytest.mark.parametrize("experiment", ["film_restore_quickstart", "film_restore"])
def test_each_phase_trains_what_it_should_and_exports(experiment: str, tmp_path: Path, monkeypatch) -> None:
    """Phase 1 moves G only, phase 2 D only, phase 3 both; baselines are logged; the export is a plain
    image-to-image net that evaluate/infer/the pipeline can run tiled like a scale-1 model."""
    import restoregan.training.run as run_mod

    snaps = _Snapshots()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [snaps])
    result = train(compose_train(_overrides(tmp_path, experiment)))
    (g0, g1, g2, g3), (d0, d1, d2, d3) = snaps.g, snaps.d
    assert not _same(g0, g1) and _same(d0, d1), "phase 1: generator only"
    assert _same(g1, g2) and not _same(d1, d2), "phase 2: discriminator only, generator frozen"
    assert not _same(g2, g3) and not _same(d2, d3), "phase 3: both"
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/phase"]) for r in rows if r.get("train/phase")] == [1.0, 2.0, 3.0]
    for key in ("train/g_pix", "train/g_adv", "train/d_real", "train/d_fake", "val/psnr", "val/ssim",
                "val/psnr_damaged", "val/psnr_median", "val/ssim_damaged"):
        assert any(key == k for r in rows for k, v in r.items() if v), f"{key} not logged"
    assert sorted((tmp_path / "images").glob("val_iter*.png")), "validation grid: damaged | restored | clean"

    loaded = load_model(f"{result.export}.safetensors")
    assert isinstance(loaded.task, RestorationTask) and loaded.scale == 1 and loaded.task.grey is True
    assert loaded.task.config() == {"_target_": "restoregan.tasks.restore.RestorationTask", "grey": True}
    assert load_model(result.last_checkpoint).task.grey is True
    x = torch.rand(2, 3, 37, 50)  # any size, not a multiple of anything
    with torch.no_grad():
        y = loaded.net(x)
        assert y.shape == x.shape
        assert torch.allclose(y, result.module.net_g_eval.cpu()(x), atol=1e-5)
        tiled = apply_tiled(loaded.net, x, 1, tile=16, overlap=32)  # how the film pipeline applies it
    assert torch.allclose(tiled, y, atol=1e-4)


def test_untrained_unet_is_the_identity_and_sees_far_enough() -> None:
    """The last conv starts at zero (output = input); a receptive field of 2 levels reaches ~20 px."""
    torch.manual_seed(0)
    net = RestoreUNet(num_feat=8)
    x = torch.rand(1, 3, 40, 40)
    assert torch.equal(net(x), x)
    torch.nn.init.normal_(net.conv_last.weight, std=0.1)
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    net(x)[0, :, 32, 32].sum().backward()
    reach = torch.nonzero(x.grad[0].abs().sum(0))
    assert (reach[:, 1].max() - reach[:, 1].min()) >= 30


def test_task_baselines_and_metrics_against_independent_values() -> None:
    """'damaged' is the input, 'median' OpenCV's 3x3 median; PSNR is skimage's on 8-bit levels."""
    from skimage.metrics import peak_signal_noise_ratio

    torch.manual_seed(0)
    gt = (torch.rand(1, 3, 24, 24) * 255).round() / 255
    lq = ((gt + 0.05 * torch.randn_like(gt)).clamp(0, 1) * 255).round() / 255
    task = RestorationTask(grey=False)
    base = task.baselines({"lq": lq, "gt": gt})
    assert torch.equal(base["damaged"], lq)
    assert torch.allclose(base["median"][0].permute(1, 2, 0), torch.from_numpy(median3(lq[0].permute(1, 2, 0).numpy())))
    as_np = lambda t: t[0].permute(1, 2, 0).double().numpy()  # noqa: E731
    expected = peak_signal_noise_ratio(as_np(gt), as_np(lq), data_range=1.0)
    assert float(task.metrics(lq, {"lq": lq, "gt": gt})["psnr"][0]) == pytest.approx(expected, abs=1e-6)
    real, fake = task.discriminator_pair({"lq": lq, "gt": gt}, gt * 0.5)
    assert real.shape[1] == fake.shape[1] == 6 and torch.equal(real[:, :3], lq)
    real, fake = RestorationTask(conditional=False).discriminator_pair({"lq": lq, "gt": gt}, gt * 0.5)
    assert torch.equal(real, gt) and torch.equal(fake, gt * 0.5)  # unconditional: the images alone
    # film restoration keeps the frame size: the task has no scale to set (train.yaml's no longer leaks in)
    assert task.scale == 1
    with pytest.raises(TypeError, match="scale"):
        RestorationTask(scale=4)
