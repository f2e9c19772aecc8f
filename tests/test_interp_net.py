"""Interpolation net pieces: backward warping, exact ends t = 0 / t = 1, shapes, discriminator, losses."""

from __future__ import annotations

import pytest
import torch

from restoregan.gans.interp_net import InterpolationNet
from restoregan.gans.temporal_discriminator import TemporalPatchDiscriminator
from restoregan.gans.warp import backward_warp, resize_flow
from restoregan.losses.interp import CensusLoss, LaplacianPyramidLoss


def _small_net() -> InterpolationNet:
    torch.manual_seed(0)
    return InterpolationNet(num_feat=(16, 16, 8), num_conv=(1, 1, 1), refine_feat=4)


def _randomise(net: torch.nn.Module) -> None:
    """Non-zero weights everywhere (the refinement head starts at zero), so nothing is trivially exact."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("dx, dy", [(3, 0), (0, -2), (5, 4), (-7, 1)])
def test_backward_warp_undoes_an_integer_shift(dx: int, dy: int) -> None:
    img = torch.rand(2, 3, 24, 31)
    # moved[y, x] = img[y - dy, x - dx]: the content shifted by (dx, dy)
    moved = torch.roll(img, shifts=(dy, dx), dims=(2, 3))
    flow = torch.zeros(2, 2, 24, 31)
    flow[:, 0], flow[:, 1] = dx, dy  # sample moved at x + dx -> img at x
    back = backward_warp(moved, flow)
    # away from the border (where the roll wrapped and the warp clamps), exact up to float rounding of the
    # grid normalisation (~1e-6 of a pixel)
    inner = (..., slice(abs(dy), 24 - abs(dy)), slice(abs(dx), 31 - abs(dx)))
    assert torch.allclose(back[inner], img[inner], atol=1e-5)


def test_backward_warp_zero_flow_is_identity_and_half_pixel_averages() -> None:
    img = torch.rand(1, 3, 8, 9)
    assert torch.allclose(backward_warp(img, torch.zeros(1, 2, 8, 9)), img, atol=1e-6)
    half = torch.zeros(1, 2, 8, 9)
    half[:, 0] = 0.5
    expected = 0.5 * (img[..., :-1] + img[..., 1:])  # bilinear between x and x + 1
    assert torch.allclose(backward_warp(img, half)[..., :-1], expected, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        backward_warp(img, torch.zeros(1, 2, 8, 8))


def test_resize_flow_scales_displacements() -> None:
    flow = torch.ones(1, 2, 4, 6) * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    up = resize_flow(flow, (8, 18))
    assert up.shape == (1, 2, 8, 18)
    assert torch.allclose(up[:, 0], torch.full((1, 8, 18), 6.0)) and torch.allclose(up[:, 1], torch.full((1, 8, 18), -2.0))


def test_t0_and_t1_return_the_inputs() -> None:
    """Exact by construction (flows scale with t, fusion weight 1/0, residual times 4t(1-t)); the only error
    is grid_sample's coordinate rounding with a zero flow, about 1e-6."""
    net = _small_net()
    _randomise(net)
    f0, f1 = torch.rand(2, 3, 29, 45), torch.rand(2, 3, 29, 45)
    with torch.no_grad():
        assert torch.allclose(net(f0, f1, 0.0), f0, atol=1e-5)
        assert torch.allclose(net(f0, f1, 1.0), f1, atol=1e-5)
        mid = net(f0, f1, 0.5)
    assert mid.shape == f0.shape and torch.isfinite(mid).all()
    assert (mid - f0).abs().max() > 1e-3  # the middle is something else


def test_time_per_sample_and_bad_t() -> None:
    net = _small_net()
    _randomise(net)
    f0, f1 = torch.rand(3, 3, 16, 20), torch.rand(3, 3, 16, 20)
    with torch.no_grad():
        out = net(f0, f1, torch.tensor([0.0, 0.5, 1.0]))
        assert torch.allclose(out[0], f0[0], atol=1e-5) and torch.allclose(out[2], f1[2], atol=1e-5)
        assert torch.allclose(out[1:2], net(f0[1:2], f1[1:2], 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="2 values for a batch of 3"):
        net(f0, f1, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="differ in shape"):
        net(f0, f1[..., :10], 0.5)


def test_details_expose_flows_and_fusion_weight() -> None:
    net = _small_net()
    out = net.interpolate(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), 0.25)
    assert out["flow_t0"].shape == (1, 2, 16, 16) and out["weight0"].shape == (1, 1, 16, 16)
    assert ((out["weight0"] >= 0) & (out["weight0"] <= 1)).all()


def test_temporal_discriminator_sees_stacked_triplets() -> None:
    d = TemporalPatchDiscriminator(num_feat=8)
    assert d(torch.rand(2, 9, 64, 48)).shape == (2, 1, 6, 4)  # 70x70-style PatchGAN: h/8 - 2
    with pytest.raises(ValueError, match="9 channels"):
        d(torch.rand(2, 3, 64, 64))


def test_laplacian_loss_bands() -> None:
    loss = LaplacianPyramidLoss(max_levels=5)
    img = torch.rand(2, 3, 64, 48)
    assert loss(img, img) == 0
    # a constant offset lives only in the low-pass residual: the loss is the offset itself
    assert torch.isclose(loss(img + 0.1, img), torch.tensor(0.1), atol=1e-5)
    # a small crop still works (levels smaller than 4 pixels are dropped)
    assert torch.isfinite(loss(torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)))


def test_census_loss_ignores_brightness_offsets_but_not_structure() -> None:
    loss = CensusLoss()
    img = torch.rand(2, 3, 32, 32) * 0.8
    assert loss(img, img) == 0
    assert loss(img + 0.1, img) < 1e-4  # ternary codes compare neighbours with the centre: offsets cancel
    assert loss(torch.roll(img, 3, dims=3), img) > 0.3
