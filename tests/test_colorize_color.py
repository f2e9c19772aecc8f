"""Colour conversions against scikit-image, and luminance-preserving recomposition."""

from __future__ import annotations

import numpy as np
import pytest
import skimage
import torch
from skimage.color import rgb2lab, rgb2yuv
from kornia.color import rgb_to_lab, rgb_to_yuv

from restoregan.data.color import chroma, compose, grey_rgb, luminance, yuv_to_rgb
from restoregan.data.io import read_image, to_tensor


def _photo() -> torch.Tensor:
    return to_tensor(read_image(skimage.data_dir + "/astronaut.png")[::4, ::4])[None]  # (1, 3, 128, 128)


def test_yuv_matches_skimage_and_round_trips_within_a_grey_level() -> None:
    rgb = _photo()
    yuv = rgb_to_yuv(rgb)
    reference = rgb2yuv(rgb[0].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(yuv[0].permute(1, 2, 0).numpy(), reference, atol=2e-3)
    back = yuv_to_rgb(yuv)
    assert (back - rgb).abs().max() * 255 < 1.0
    assert (back - rgb).abs().max() < 1e-5  # the exact inverse, unlike kornia's rounded yuv_to_rgb


def test_lab_matches_skimage_and_round_trips_within_a_grey_level() -> None:
    rgb = _photo()
    lab = rgb_to_lab(rgb)
    reference = rgb2lab(rgb[0].permute(1, 2, 0).numpy().astype(np.float64))
    np.testing.assert_allclose(lab[0].permute(1, 2, 0).numpy(), reference, atol=0.05)
    back = compose(luminance(rgb, "lab"), chroma(rgb, "lab"), "lab")
    assert (back - rgb).abs().max() * 255 < 1.0


@pytest.mark.parametrize("space", ["yuv", "lab"])
def test_split_and_compose_reproduce_the_photo(space: str) -> None:
    rgb = _photo()
    assert (compose(luminance(rgb, space), chroma(rgb, space), space) - rgb).abs().max() * 255 < 1.0


def test_compose_keeps_luminance_for_any_chroma() -> None:
    """Out-of-gamut chroma is shrunk towards grey, never clipped per channel, so Y is the input's."""
    torch.manual_seed(0)
    lum = torch.rand(2, 1, 16, 16)
    wild = 3 * torch.randn(2, 2, 16, 16)  # far outside the gamut
    rgb = compose(lum, wild, "yuv")
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (luminance(rgb, "yuv") - lum).abs().max() < 1e-5
    assert (chroma(rgb, "yuv").abs() > 0.05).float().mean() > 0.5  # colour survives, only scaled


def test_grey_rgb_has_equal_channels_and_the_luminance() -> None:
    rgb = _photo()
    grey = grey_rgb(rgb)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert (luminance(grey) - luminance(rgb)).abs().max() < 1e-6


def test_unknown_space_is_rejected() -> None:
    with pytest.raises(ValueError, match="colour space"):
        luminance(torch.rand(1, 3, 4, 4), "hsv")
