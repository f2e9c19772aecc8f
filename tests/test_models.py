"""Every generator / discriminator config builds, gives the right output shape, finite values and finite
gradients on CPU. A new architecture yaml is tested without writing a test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = sorted((ROOT / "conf" / "generator").glob("*.yaml"))
DISCRIMINATORS = sorted((ROOT / "conf" / "discriminator").glob("*.yaml"))
SCALE, CROP = 4, 64  # what the train config supplies as ${task.scale} and ${data.crop_size}


def build(path: Path) -> torch.nn.Module:
    """Instantiate a group config the way train.yaml would, with its interpolations resolved."""
    cfg = OmegaConf.create(
        {"task": {"scale": SCALE}, "data": {"crop_size": CROP}, "pretrained_backbones": False, "net": OmegaConf.load(path)}
    )
    return instantiate(cfg.net)


def assert_finite_grads(net: torch.nn.Module) -> None:
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("path", GENERATORS, ids=lambda p: p.stem)
def test_generator_config(path: Path) -> None:
    torch.manual_seed(0)
    net = build(path)
    if hasattr(net, "example_inputs"):  # not an upscaler (colorization, interpolation): shapes in its own tests
        out = net(*net.example_inputs())
        assert torch.isfinite(out).all()
        out.square().mean().backward()
        assert_finite_grads(net)
        return
    assert net.scale == SCALE
    lr = torch.rand(1, 3, 8, 12)  # small and non-square: catches swapped h/w
    sr = net(lr)
    assert sr.shape == (1, 3, 8 * SCALE, 12 * SCALE)
    assert torch.isfinite(sr).all()
    sr.square().mean().backward()
    assert_finite_grads(net)


@pytest.mark.parametrize("path", DISCRIMINATORS, ids=lambda p: p.stem)
def test_discriminator_config(path: Path) -> None:
    torch.manual_seed(0)
    net = build(path)
    # batch of 2: BatchNorm in train mode needs more than one value
    inputs = net.example_inputs() if hasattr(net, "example_inputs") else (torch.rand(2, 3, CROP, CROP),)
    out = net(*inputs)
    assert out.shape[:2] == (inputs[0].shape[0], 1)
    if not hasattr(net, "example_inputs"):  # one logit per image (VGG) or per pixel (U-Net)
        assert out.shape in ((2, 1), (2, 1, CROP, CROP))
    assert torch.isfinite(out).all()
    out.mean().backward()
    assert_finite_grads(net)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_scales_and_odd_sizes(scale: int) -> None:
    """x2 / x1 pixel-unshuffle the input (BasicSR); odd sizes are padded and cropped back."""
    from restoregan.gans.rrdbnet import RRDBNet

    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale)
    assert net.conv_first.in_channels == 3 * (4 // scale) ** 2
    assert net(torch.rand(1, 3, 7, 9)).shape == (1, 3, 7 * scale, 9 * scale)


def test_rrdbnet_parameter_names_are_basicsr() -> None:
    """The names community ESRGAN checkpoints use, and the default size (16.7 M parameters)."""
    from restoregan.gans.rrdbnet import RRDBNet

    net = RRDBNet()
    keys = set(net.state_dict())
    for key in ("conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight",
                "conv_up2.weight", "conv_hr.weight", "conv_last.weight"):
        assert key in keys
    assert "body.23.rdb1.conv1.weight" not in keys
    assert sum(p.numel() for p in net.parameters()) == 16_697_987


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_scales(scale: int) -> None:
    from restoregan.gans.srresnet import SRResNet

    assert SRResNet(num_feat=8, num_block=1, scale=scale)(torch.rand(1, 3, 5, 6)).shape == (1, 3, 5 * scale, 6 * scale)


def test_vgg_discriminator_sizes() -> None:
    from restoregan.gans.vgg_discriminator import VGGStyleDiscriminator

    net = VGGStyleDiscriminator(num_feat=4, input_size=96)  # SRGAN's 96x96 crops: a 3x3 map before the dense layers
    assert net(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGStyleDiscriminator(input_size=100)
    with pytest.raises(ValueError, match="96x96"):
        net(torch.rand(2, 3, 64, 64))


def test_unet_discriminator_needs_multiple_of_8() -> None:
    from restoregan.gans.unet_discriminator import UNetDiscriminatorSN

    net = UNetDiscriminatorSN(num_feat=4, skip_connection=False)
    assert net(torch.rand(1, 3, 24, 16)).shape == (1, 1, 24, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 3, 20, 16))
