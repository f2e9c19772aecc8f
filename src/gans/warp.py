"""Backward warping with optical flow.

Flow convention (used by the interpolation net, its losses and tests): a flow is a `(b, 2, h, w)` tensor of
pixel displacements, channel 0 = x (to the right), channel 1 = y (down). `backward_warp(img, flow)` samples
`img` where the flow points: `out[:, :, y, x] = img[:, :, y + flow_y[y, x], x + flow_x[y, x]]` (bilinear;
outside the image the border pixel is repeated). So `flow_t0`, "the flow from the frame at time t to frame 0",
is what turns frame 0 into the frame at t: `frame_t ~ backward_warp(frame0, flow_t0)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_GRIDS: dict[tuple, Tensor] = {}


def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, 2, h, w) pixel coordinates (x, y); cached per size/device, it is rebuilt on every call otherwise."""
    key = (h, w, device, dtype)
    if key not in _GRIDS:
        if len(_GRIDS) >= 16:  # evaluation meets many frame sizes: keep the cache bounded
            _GRIDS.clear()
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
        )
        _GRIDS[key] = torch.stack((xs, ys))[None]
    return _GRIDS[key]


def backward_warp(img: Tensor, flow: Tensor) -> Tensor:
    """Sample `img` (b, c, h, w) at `pixel + flow` (b, 2, h, w); bilinear, border padding."""
    if flow.shape[1] != 2 or flow.shape[-2:] != img.shape[-2:] or flow.shape[0] != img.shape[0]:
        raise ValueError(f"backward_warp: flow {tuple(flow.shape)} does not fit image {tuple(img.shape)}")
    h, w = img.shape[-2:]
    coords = _base_grid(h, w, flow.device, flow.dtype) + flow  # (b, 2, h, w) absolute pixel positions
    # grid_sample wants [-1, 1] with align_corners=True: -1 / +1 are the centres of the first / last pixel.
    # Integer coordinates survive the round trip up to float rounding (~1e-6 px), so an integer shift is
    # undone to within float precision.
    gx = coords[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = coords[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)  # (b, h, w, 2)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize a flow field to `size` (h, w), scaling the displacements with the image."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return out * scale
