"""Optical flow by OpenCV's DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016), for
networks that align frames but need not learn how.

Why not a flow net: a flow net learned from scratch within a CPU budget aligns badly (the temporal restorer's,
after 20 minutes here, cut the photometric error between clean neighbours by only a third to a half), while DIS
on the damaged frames themselves, unlearned, lines up neighbours well enough that the median of five of them is
2.3-3.3 dB closer to the clean frame than the damaged one (bench/README.md). It costs about 5 ms per pair of
432x320 frames on one core and is deterministic. It is not differentiable: no gradient flows into the flow,
which nothing here needs.

Film scratches are thin vertical lines that stay at one place in the frame while the scene moves: DIS, which
follows the strongest edges, can lock onto them and report no motion there, so the aligned neighbours keep the
scratch. `scratch_filter=k` takes a horizontal median of k pixels of each frame before DIS (it removes lines
narrower than k / 2 and keeps edges); measured on the film bench's 101 held-out damaged clips, k = 7 lifts the
median of the aligned neighbours by 0.09 dB pooled, and by 2.7 and 3.5 dB on the two long-scratch clips looked at
(teddy bear, viaduct; bench/README.md).

Convention: `restoregan.gans.warp`'s, `backward_warp(b, dis_flow(a, b)) ~ a`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def check_scratch_filter(k: object) -> int:
    """`scratch_filter`: 0 (off) or an odd width in pixels, refused in one line otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0 or (k > 1 and k % 2 == 0):
        raise ValueError(f"scratch_filter must be 0 (off) or an odd number of pixels, got {k!r}")
    return k


def horizontal_median(grey: Tensor, k: int) -> Tensor:
    """(n, h, w) -> the median of each pixel's k-pixel row neighbourhood (edges replicated); k odd, 0 or 1: unchanged."""
    if check_scratch_filter(k) <= 1:
        return grey
    return F.pad(grey[:, None], (k // 2, k // 2, 0, 0), mode="replicate")[:, 0].unfold(-1, k, 1).median(-1).values


def _grey8(frames: Tensor, scratch_filter: int = 0) -> np.ndarray:
    """(n, c, h, w) in [0, 1] -> (n, h, w) uint8 luminance-like mean of the channels, as DIS reads it."""
    grey = horizontal_median(frames.detach().float().mean(1), scratch_filter)
    return grey.mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def dis_flows(a: Tensor, b: Tensor, preset: str = "medium", scratch_filter: int = 0) -> Tensor:
    """Flows (n, 2, h, w) in pixels from each frame of `a` (n, c, h, w) to the same-index frame of `b`, so that
    backward_warp(b, flow) ~ a; on a's device and dtype, without gradient. scratch_filter: width of the
    horizontal median taken before DIS (0: none), see the module's docstring."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"dis_flows: frames {tuple(a.shape)} and {tuple(b.shape)} must be equal (n, c, h, w)")
    n = a.shape[0]
    return dis_flows_between(torch.cat([a, b]), [(i, n + i) for i in range(n)], preset, scratch_filter)


def dis_flows_between(frames: Tensor, pairs: Sequence[tuple[int, int]], preset: str = "medium",
                      scratch_filter: int = 0) -> Tensor:
    """dis_flows(frames[i], frames[j]) for each (i, j) of `pairs`, (len(pairs), 2, h, w), with each frame of
    `frames` (n, c, h, w) converted (and filtered) once however many pairs it is in: a clip's frame is in about
    2 x radius pairs each way."""
    if frames.ndim != 4:
        raise ValueError(f"dis_flows: frames must be (n, c, h, w), got {tuple(frames.shape)}")
    if preset not in PRESETS:
        raise ValueError(f"dis_flows: preset {preset!r} is not one of {sorted(PRESETS)}")
    grey = _grey8(frames, scratch_filter)
    if not pairs:
        return frames.new_zeros(0, 2, *frames.shape[-2:])
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])  # made per call: it holds state and is not picklable
    flows = np.stack([dis.calc(grey[i], grey[j], None) for i, j in pairs])  # (len(pairs), h, w, 2)
    return torch.from_numpy(flows).permute(0, 3, 1, 2).to(device=frames.device, dtype=frames.dtype)


def pairs_within(t: int, radius: int) -> list[tuple[int, int]]:
    """Every (i, j) of a clip of t frames with 1 <= |i - j| <= radius."""
    return [(i, j) for i in range(t) for j in range(max(0, i - radius), min(t, i + radius + 1)) if j != i]


__all__: Sequence[str] = ("dis_flows", "dis_flows_between", "horizontal_median", "pairs_within", "PRESETS")
