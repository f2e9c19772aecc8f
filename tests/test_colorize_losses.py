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


def test_ciede2000_matches_sharma_table_and_skimage() -> None:
    """The differentiable CIEDE2000 against Sharma et al. 2005's published test pairs and skimage's numpy version."""
    import numpy as np
    from kornia.color import rgb_to_lab
    from skimage.color import deltaE_ciede2000, rgb2lab

    from restoregan.losses.delta_e import DeltaE2000Loss, ciede2000

    sharma = [  # (Lab 1, Lab 2, published delta E 2000), pairs 1, 2, 3 and 7 of the paper's table
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
        ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ]
    for lab1, lab2, published in sharma:
        got = ciede2000(torch.tensor(lab1, dtype=torch.float64), torch.tensor(lab2, dtype=torch.float64), dim=0, eps=0)
        assert abs(float(got) - published) < 1e-4
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 24, 24)), rng.random((3, 24, 24))
    a[:, :4] = 0.5  # grey pixels: hue undefined
    b[:, :2] = a[:, :2]  # identical pixels: difference 0
    ref = deltaE_ciede2000(rgb2lab(a.transpose(1, 2, 0)), rgb2lab(b.transpose(1, 2, 0)))
    ours = ciede2000(rgb_to_lab(torch.tensor(a)[None]), rgb_to_lab(torch.tensor(b)[None]), eps=0)[0].numpy()
    assert np.abs(ours - ref).max() < 1e-6
    # as a loss: the mean over pixels / scale, with finite gradients even where both images are grey and equal
    pred = torch.tensor(a, dtype=torch.float32)[None].requires_grad_(True)
    loss = DeltaE2000Loss(scale=10.0)(pred, torch.tensor(a, dtype=torch.float32)[None])
    loss.backward()
    assert float(loss) < 1e-3 and torch.isfinite(pred.grad).all()
    assert torch.isclose(DeltaE2000Loss(scale=10.0)(torch.tensor(b, dtype=torch.float32)[None],
                                                    torch.tensor(a, dtype=torch.float32)[None]),
                         torch.tensor(ref.mean() / 10.0, dtype=torch.float32), rtol=1e-4)
