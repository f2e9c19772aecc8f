"""RIFE v4 (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022) as
its users hold it: the `flownet.pkl` of Practical-RIFE's v4.5 and v4.6 releases, whose parameter names this
network reproduces so such a file loads into it as it is (v4.5's last layer has 4 x 5 channels, v4.6's 4 x 6). Written here from the paper and that file's layer list.

IFNet, the paper's intermediate-flow network, estimates the flows from the unknown frame at time t back to both
inputs directly (no flow between the inputs, no flow reversal), coarse to fine:

    1. `IFBlock` i sees the inputs downsampled by `scales[i]` (8, 4, 2, 1 for four blocks) with t as a constant
       channel; the first block sees both frames, the later ones the frames warped by the current estimate, the
       fusion mask and that estimate (4 flow channels), and each returns a residual (flow_t0, flow_t1, mask);
    2. a block: two stride-2 convolutions (to 1/4 of its input), residual convolutions scaled per channel
       (`beta`), a stride-2 transposed convolution and a pixel shuffle back to its input size, then bilinear
       upsampling to full size, the flow multiplied by the block's scale (pixels at full size);
    3. output: both frames backward-warped by their flows (`restoregan.gans.warp`, the same sampling convention as
       RIFE's: pixel + flow, bilinear, border repeated), fused by sigmoid(mask).

`RifeInterpolator` wraps it in the `net(frame0, frame1, t)` interface of our interpolation networks: inputs are
padded at the right and bottom to the network's multiple (the coarsest block sees 1/(4 x 8) of the input) as
Practical-RIFE pads them, and the output cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.interp_net import as_time
from restoregan.gans.warp import backward_warp


class ResConv(nn.Module):
    """x + beta * conv(x), then LeakyReLU(0.2): `beta` (1, c, 1, 1) starts at 1 and scales each channel."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2))


class IFBlock(nn.Module):
    """One level of IFNet: its input at 1/scale -> (flow residual (b, 4, H, W) in full-size pixels, mask logit
    residual (b, 1, H, W)). `outputs` channels leave the pixel shuffle: 4 flow, 1 mask, the rest unused."""

    def __init__(self, in_ch: int, c: int, num_res: int = 8, outputs: int = 6) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_down(in_ch, c // 2), _down(c // 2, c))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(num_res)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * outputs, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: Tensor, flow: Tensor | None, scale: int) -> tuple[Tensor, Tensor]:
        h, w = x.shape[-2:]
        small = (h // scale, w // scale)
        if scale != 1:
            x = F.interpolate(x, size=small, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1:
                flow = F.interpolate(flow, size=small, mode="bilinear", align_corners=False) / scale
            x = torch.cat([x, flow], 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5]


class IFNet(nn.Module):
    """Coarse-to-fine intermediate flow (module docstring). `widths` of the blocks, first to last; each block
    after the first reads 3 + 3 warped frames, t, the mask and the 4-channel flow."""

    def __init__(self, widths: Sequence[int] = (192, 128, 96, 64), num_res: int = 8, outputs: int = 6) -> None:
        super().__init__()
        self.num_blocks = len(widths)
        self.scales = [2 ** (self.num_blocks - 1 - i) for i in range(self.num_blocks)]  # 8, 4, 2, 1
        for i, c in enumerate(widths):  # named block0.. as in the published files
            self.add_module(f"block{i}", IFBlock(7 if i == 0 else 8 + 4, c, num_res, outputs))

    @property
    def multiple(self) -> int:
        """Input sides must divide this: the coarsest block halves its 1/scale input twice."""
        return 4 * self.scales[0]

    def forward(self, img0: Tensor, img1: Tensor, t: Tensor) -> Tensor:
        """img0, img1 (b, 3, H, W) with H, W multiples of `multiple`; t (b, 1, 1, 1) -> the frame at t."""
        time = t.expand(-1, 1, *img0.shape[-2:])
        flow = mask = None
        warped0, warped1 = img0, img1
        for i in range(self.num_blocks):
            block = getattr(self, f"block{i}")
            if flow is None or mask is None:
                flow, mask = block(torch.cat([img0, img1, time], 1), None, self.scales[i])
            else:
                d_flow, d_mask = block(torch.cat([warped0, warped1, time, mask], 1), flow, self.scales[i])
                flow, mask = flow + d_flow, mask + d_mask
            warped0, warped1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


class RifeInterpolator(nn.Module):
    """An IFNet behind `net(frame0, frame1, t) -> frame` (t: a float, (b,) or (b, 1, 1, 1)), any frame size."""

    def __init__(self, widths: Sequence[int] = (192, 128, 96, 64), num_res: int = 8, outputs: int = 6) -> None:
        super().__init__()
        self.flownet = IFNet(widths, num_res, outputs)

    def forward(self, frame0: Tensor, frame1: Tensor, t: Tensor | float) -> Tensor:
        h, w = frame0.shape[-2:]
        m = self.flownet.multiple
        pad = (0, -w % m, 0, -h % m)  # right and bottom, zeros, as Practical-RIFE's inference pads
        if any(pad):
            frame0, frame1 = F.pad(frame0, pad), F.pad(frame1, pad)
        out = self.flownet(frame0, frame1, as_time(t, frame0.shape[0], frame0))
        return out[..., :h, :w]
