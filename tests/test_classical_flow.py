"""DIS optical flow (restoregan.gans.classical_flow) against motion known by construction: a photo moved by a
whole number of pixels, so the true flow is that shift everywhere away from the borders."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from restoregan.gans.classical_flow import dis_flows, pairs_within
from restoregan.gans.warp import backward_warp


def _moved(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b), each (1, 3, 96, 128): b is a moved by (dx, dy) px (b(x) = a(x - d)), cut from one larger photo."""
    img = torch.from_numpy(skimage.data.camera()[::3, ::3].astype(np.float32) / 255)  # 171x171, textured
    a = img[20:116, 20:148]
    b = img[20 - dy:116 - dy, 20 - dx:148 - dx]
    return a.expand(1, 3, 96, 128).contiguous(), b.expand(1, 3, 96, 128).contiguous()


@pytest.mark.parametrize("dx,dy", [(3, -2), (-5, 0), (0, 4)])
def test_dis_finds_a_known_shift_and_its_flow_aligns_b_onto_a(dx: int, dy: int) -> None:
    a, b = _moved(dx, dy)
    flow = dis_flows(a, b)
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == a.dtype and not flow.requires_grad
    inner = flow[0, :, 12:-12, 12:-12]
    # a(x) = b(x + d): the flow from a to b is +d
    assert abs(float(inner[0].median()) - dx) < 0.1 and abs(float(inner[1].median()) - dy) < 0.1
    err_aligned = (backward_warp(b, flow) - a)[..., 12:-12, 12:-12].abs().mean()
    err_none = (b - a)[..., 12:-12, 12:-12].abs().mean()
    assert float(err_aligned) < 0.1 * float(err_none)


def test_dis_is_deterministic_and_refuses_bad_arguments_in_one_line() -> None:
    a, b = _moved(2, 1)
    assert torch.equal(dis_flows(a, b), dis_flows(a, b))
    with pytest.raises(ValueError, match="must be equal"):
        dis_flows(a, b[..., :64])
    with pytest.raises(ValueError, match="preset 'slow' is not one of"):
        dis_flows(a, b, preset="slow")


def test_pairs_within_lists_every_neighbour_inside_the_clip() -> None:
    assert pairs_within(4, 2) == [(0, 1), (0, 2), (1, 0), (1, 2), (1, 3), (2, 0), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert pairs_within(1, 2) == [] and pairs_within(3, 1) == [(0, 1), (1, 0), (1, 2), (2, 1)]
