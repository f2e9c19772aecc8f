"""Optical flow by OpenCV's DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016), for
networks that align frames but need not learn how.

Why not a flow net: a flow net learned from scratch within a CPU budget aligns badly (the temporal restorer's,
after 20 minutes here, cut the photometric error between clean neighbours by only a third to a half), while DIS
on the damaged frames themselves, unlearned, lines up neighbours well enough that the median of five of them is
2.3-3.3 dB closer to the clean frame than the damaged one (bench/README.md). It costs about 5 ms per pair of
432x320 frames on one core and is deterministic. It is not differentiable: no gradient flows into the flow,
which nothing here needs.

Convention: `restoregan.gans.warp`'s, `backward_warp(b, dis_flow(a, b)) ~ a`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _grey8(frames: Tensor) -> np.ndarray:
    """(n, c, h, w) in [0, 1] -> (n, h, w) uint8 luminance-like mean of the channels, as DIS reads it."""
    grey = frames.detach().float().mean(1).mul(255).round().clamp(0, 255)
    return grey.to(torch.uint8).cpu().numpy()


def dis_flows(a: Tensor, b: Tensor, preset: str = "medium") -> Tensor:
    """Flows (n, 2, h, w) in pixels from each frame of `a` (n, c, h, w) to the same-index frame of `b`, so that
    backward_warp(b, flow) ~ a; on a's device and dtype, without gradient."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"dis_flows: frames {tuple(a.shape)} and {tuple(b.shape)} must be equal (n, c, h, w)")
    if preset not in PRESETS:
        raise ValueError(f"dis_flows: preset {preset!r} is not one of {sorted(PRESETS)}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])  # made per call: it holds state and is not picklable
    ga, gb = _grey8(a), _grey8(b)
    flows = np.stack([dis.calc(x, y, None) for x, y in zip(ga, gb)])  # (n, h, w, 2)
    return torch.from_numpy(flows).permute(0, 3, 1, 2).to(device=a.device, dtype=a.dtype)


def pairs_within(t: int, radius: int) -> list[tuple[int, int]]:
    """Every (i, j) of a clip of t frames with 1 <= |i - j| <= radius."""
    return [(i, j) for i in range(t) for j in range(max(0, i - radius), min(t, i + radius + 1)) if j != i]


__all__: Sequence[str] = ("dis_flows", "pairs_within", "PRESETS")
