"""Colorization losses and decoder options: chroma L1, saturation, rebalanced chroma L1; SN / BatchNorm decoder."""

from __future__ import annotations

import torch

from restoregan.data.color import chroma, compose
from restoregan.gans.colorize_unet import ColorizeUNet
from restoregan.losses.chroma import ChromaL1Loss, RebalancedChromaL1Loss, SaturationLoss


def _image(chroma_n: torch.Tensor, size: int = 8) -> torch.Tensor:
    """(k, 2) scaled YUV chroma -> (k, 3, size, size) flat RGB patches of mid luminance with those colours."""
    lum = torch.full((chroma_n.shape[0], 1, size, size), 0.5)
    return compose(lum, chroma_n[:, :, None, None].expand(-1, -1, size, size), "yuv")


def test_chroma_l1_and_saturation_match_hand_computation() -> None:
    target = _image(torch.tensor([[0.3, -0.2]]))
    pred = _image(torch.tensor([[0.1, 0.0]]))
    c_t, c_p = chroma(target), chroma(pred)
    assert torch.isclose(ChromaL1Loss()(pred, target), (c_t - c_p).abs().mean())
    expected_sat = c_t.norm(dim=1).mean() - c_p.norm(dim=1).mean()  # flat patches: one magnitude each
    assert torch.isclose(SaturationLoss()(pred, target), expected_sat, atol=1e-6)
    assert SaturationLoss()(target, pred) == 0  # one-sided: more colour than the target costs nothing


def test_rebalanced_l1_weights_rare_colours_up() -> None:
    common, rare = torch.tensor([0.3, -0.2]), torch.tensor([-0.4, 0.5])
    target = _image(torch.stack([common] * 9 + [rare]))  # 90% of pixels in one colour cell
    loss = RebalancedChromaL1Loss("yuv", mix=0.5).train()
    w = loss.weights(chroma(target))
    # independent reference: p = (0.9, 0.1) over Q = 2 cells, w = 1 / (0.5 p + 0.25), normalised to mean 1
    raw = {"common": 1 / (0.5 * 0.9 + 0.25), "rare": 1 / (0.5 * 0.1 + 0.25)}
    mean = 0.9 * raw["common"] + 0.1 * raw["rare"]
    assert torch.allclose(w[:9], torch.tensor(raw["common"] / mean), atol=1e-5)
    assert torch.allclose(w[9], torch.tensor(raw["rare"] / mean), atol=1e-5)
    # the loss weights each pixel's chroma L1 by it: an error on the rare colour costs more than on the common
    err_rare, err_common = target.clone(), target.clone()
    err_rare[9] = _image(torch.tensor([[0.0, 0.0]]))[0]
    err_common[0] = _image(torch.tensor([[0.0, 0.0]]))[0]
    assert loss(err_rare, target) > 2 * loss(err_common, target)


def test_rebalanced_l1_is_plain_l1_on_uniform_colours_and_frozen_in_eval() -> None:
    target = _image(torch.tensor([[0.3, -0.2], [-0.4, 0.5]]))
    pred = _image(torch.tensor([[0.0, 0.0], [0.1, 0.1]]))
    loss = RebalancedChromaL1Loss("yuv").train()
    assert torch.isclose(loss(pred, target), ChromaL1Loss()(pred, target), atol=1e-6)
    freq = loss.freq.clone()
    loss.eval()(pred, _image(torch.tensor([[0.6, 0.6]])))
    assert torch.equal(loss.freq, freq), "validation batches must not change the colour statistics"


def test_decoder_norm_options() -> None:
    torch.manual_seed(0)
    default = ColorizeUNet("resnet18", pretrained=False, decoder_channels=[16, 16, 16, 8, 8])
    assert "up.0.conv1.weight_orig" in default.state_dict()  # spectral norm, keys of earlier exports kept
    bn = ColorizeUNet("resnet18", pretrained=False, decoder_channels=[16, 16, 16, 8, 8], spectral_norm=False,
                      batch_norm=True)
    keys = bn.state_dict().keys()
    assert "up.0.conv1.weight" in keys and "up.0.norm1.running_mean" in keys
    assert not any(k.endswith("weight_orig") and k.startswith("up") for k in keys)
    out = bn.train()(torch.rand(2, 1, 40, 72))
    assert out.shape == (2, 2, 40, 72) and torch.count_nonzero(out) == 0  # still starts grey
