"""Colorization generator, conditional discriminator and task: shapes, luminance kept, conditioning."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from restoregan.data.color import luminance
from restoregan.gans.colorize_unet import ColorizeUNet
from restoregan.gans.patch_discriminator import PatchDiscriminator
from restoregan.pretrained import MissingWeightsError
from restoregan.tasks.colorize import ColorizationTask, colorize, render_shape


def _small_unet() -> ColorizeUNet:
    torch.manual_seed(0)
    return ColorizeUNet("resnet18", pretrained=False, decoder_channels=[16, 16, 16, 8, 8])


def test_unet_takes_any_size_and_starts_grey() -> None:
    net = _small_unet().eval()
    lum = torch.rand(1, 1, 37, 53)  # odd sizes: padded to 64x64 inside, cropped back
    out = net(lum)
    assert out.shape == (1, 2, 37, 53)
    assert torch.count_nonzero(out) == 0  # zero-initialised head: an untrained model colours nothing
    with pytest.raises(ValueError, match=r"\(b, 1, h, w\)"):
        net(torch.rand(1, 3, 32, 32))


def test_generated_colour_keeps_the_input_luminance() -> None:
    net = _small_unet().eval()
    torch.nn.init.normal_(net.head.weight, std=1.0)  # loud, out-of-gamut chroma
    task = ColorizationTask()
    gt = torch.rand(2, 3, 64, 64)
    grey = luminance(gt).expand(-1, 3, -1, -1)
    batch = {"lq": grey, "gt": gt}
    with torch.no_grad():
        out = task.generate(net, batch)
    assert (out - out.mean(1, keepdim=True)).abs().max() > 0.05, "the output should hold colour"
    assert (luminance(out) - luminance(grey)).abs().max() * 255 < 0.01
    assert (task.target(batch) - gt).abs().max() * 255 < 1.0  # clean input: the target is the original


def test_render_size_renders_small_and_upsamples() -> None:
    assert render_shape(480, 640, 128) == (128, 160)
    assert render_shape(100, 100, None) == (100, 100)
    calls = []
    net = _small_unet().eval()
    net.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape[-2:])))
    with torch.no_grad():
        rgb = colorize(net, torch.rand(1, 1, 96, 160), render_size=64)
    assert calls == [(64, 96)] and rgb.shape == (1, 3, 96, 160)


def test_discriminator_sees_the_condition() -> None:
    torch.manual_seed(0)
    net_d = PatchDiscriminator(num_in_ch=4, num_feat=8).eval()
    task = ColorizationTask()
    gt = torch.rand(1, 3, 64, 64)
    batch_a = {"lq": luminance(gt).expand(-1, 3, -1, -1), "gt": gt}
    batch_b = {"lq": torch.rand(1, 1, 64, 64).expand(-1, 3, -1, -1), "gt": gt}
    real_a, fake_a = task.discriminator_pair(batch_a, gt)
    real_b, _ = task.discriminator_pair(batch_b, gt)
    assert real_a.shape == fake_a.shape == (1, 4, 64, 64)
    assert torch.allclose(real_a[:, :1], luminance(gt), atol=1e-6)  # channel 0 is the grey condition
    # the same colour image under another condition is judged differently
    assert not torch.allclose(net_d(real_a), net_d(real_b))
    with pytest.raises(ValueError, match="4 channels"):
        net_d(gt)


def test_task_takes_no_scale_and_exports_its_colour_space() -> None:
    assert ColorizationTask("lab").config() == {"_target_": "restoregan.tasks.colorize.ColorizationTask",
                                                "color_space": "lab", "render_size": None}
    assert ColorizationTask.scale == 1  # colorization keeps the input size: no scale setting to get wrong
    with pytest.raises(TypeError, match="scale"):
        ColorizationTask(scale=4)


def test_grey_baseline_metrics() -> None:
    task = ColorizationTask()
    gt = torch.rand(2, 3, 32, 32)
    batch = {"lq": luminance(gt).expand(-1, 3, -1, -1), "gt": gt}
    grey = task.baselines(batch)["grey"]
    scores = task.metrics(grey, batch)
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in scores.values())  # one score per item
    assert (scores["colorfulness"] < 1e-6).all() and (scores["colorfulness_ratio"] < 1e-6).all()
    assert (scores["delta_e"] > 1.0).all()
    perfect = task.metrics(task.target(batch), batch)
    assert (perfect["delta_e"] < 1e-6).all() and perfect["colorfulness_ratio"] == pytest.approx([1.0, 1.0])
    assert torch.isinf(perfect["psnr"]).all() and perfect["ssim"] == pytest.approx([1.0, 1.0])


def test_pretrained_encoder_offline_names_the_file_and_the_switch(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() then follows TORCH_HOME
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(MissingWeightsError) as info:
        ColorizeUNet("resnet18", pretrained=True)
    message = str(info.value)
    assert "resnet18-" in message and str(tmp_path) in message and "pretrained_backbones=false" in message
