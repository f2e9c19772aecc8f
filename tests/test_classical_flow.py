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


def test_scratch_filter_lets_the_flow_follow_the_scene_past_static_vertical_scratches() -> None:
    """Film scratches stay put in the frame while the scene pans: read raw, DIS follows the lines near them (the
    aligned neighbour keeps the scratch); through the horizontal median it follows the scene."""
    a, b = _moved(4, 0)
    for x, level in ((40, 0.0), (41, 0.0), (80, 1.0), (100, 0.0)):  # dark and bright lines, same place in both frames
        a[..., x], b[..., x] = level, level
    near = (slice(12, -12), slice(34, 106))  # the band the scratches run through, away from the borders
    errors = {}
    for k in (0, 7):
        flow = dis_flows(a, b, scratch_filter=k)
        errors[k] = float((flow[0, 0][near] - 4).abs().mean())
    assert errors[7] < 0.5 and errors[7] < 0.5 * errors[0], errors


def test_horizontal_median_removes_thin_vertical_lines_and_keeps_edges() -> None:
    from restoregan.gans.classical_flow import horizontal_median

    img = torch.zeros(1, 8, 30)
    img[..., 20:] = 1.0  # a step edge
    img[..., 0] = 1.0  # and one at the left border: kept only if the border is replicated (zero padding loses it)
    img[..., 1:3] = 1.0
    lined = img.clone()
    lined[..., 10:12] = 1.0  # a 2-pixel bright line on the dark side
    assert torch.equal(horizontal_median(lined, 7), img)
    assert torch.equal(horizontal_median(lined, 1), lined)
    assert horizontal_median(torch.rand(2, 5, 3), 11).shape == (2, 5, 3)  # wider than the frame
    for bad in (4, -1, True, 7.0):
        with pytest.raises(ValueError, match="odd number"):
            horizontal_median(lined, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd number"):
        dis_flows(*_moved(1, 0), scratch_filter=4)


def test_flows_between_frames_equal_pairwise_flows() -> None:
    """The temporal restorer converts each frame once and names pairs by index: same flows as frame by frame."""
    from restoregan.gans.classical_flow import dis_flows_between

    a, b = _moved(3, 1)
    c = torch.roll(b, 2, -1)
    frames = torch.cat([a, b, c])
    pairs = [(0, 1), (1, 0), (2, 0), (1, 2)]
    got = dis_flows_between(frames, pairs, scratch_filter=7)
    want = torch.cat([dis_flows(frames[i:i + 1], frames[j:j + 1], scratch_filter=7) for i, j in pairs])
    assert torch.equal(got, want)
    assert dis_flows_between(frames, []).shape == (0, 2, 96, 128)


def test_temporal_restorer_reads_its_flow_through_its_scratch_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    from restoregan.gans import temporal_restorer

    seen = []
    real = temporal_restorer.dis_flows_between

    def spy(frames, pairs, preset="medium", scratch_filter=0):  # noqa: ANN001, ANN202
        seen.append((frames.shape[0], scratch_filter))
        return real(frames, pairs, preset, scratch_filter)

    monkeypatch.setattr(temporal_restorer, "dis_flows_between", spy)
    net = temporal_restorer.TemporalRestorer(num_feat=8, num_blocks=1, scratch_filter=7)
    net(torch.rand(2, 4, 3, 24, 32))
    assert seen == [(8, 7)]  # every frame of both clips, converted once, filtered with the model's width
    with pytest.raises(ValueError, match="odd number"):
        temporal_restorer.TemporalRestorer(scratch_filter=4)
