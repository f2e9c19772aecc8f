"""Flow-based frame interpolation in the spirit of RIFE (Huang et al., ECCV 2022) and IFRNet (Kong et al.,
CVPR 2022): synthesise the frame at any time t in (0, 1) between two frames.

    1. coarse to fine (`scales`, e.g. 1/16, 1/8, 1/4 of the input inside the blocks): each block looks at both
       frames, their current warps towards t, t and the current estimate, and refines a motion field
       u = (u0, u1) and a fusion logit m;
    2. bidirectional flows scale with t, so t = 0 and t = 1 are exact by construction:
       flow_t0 = t * u0, flow_t1 = (1 - t) * u1 (for linear motion u0 = -F_01 and u1 = F_01);
    3. backward warping of both frames (`restoregan.gans.warp`, flow convention there);
    4. fusion: out = w0 * warp(frame0) + (1 - w0) * warp(frame1) with
       w0 = (1 - t) sigmoid(m) / ((1 - t) sigmoid(m) + t sigmoid(-m)): occlusion-aware where the net is sure,
       temporal distance otherwise, and exactly 1 at t = 0 and 0 at t = 1;
    5. a small U-Net adds a residual scaled by 4 t (1 - t) (zero at the ends).

At t = 0 the output is frame0 warped by a zero flow, i.e. frame0 up to grid_sample's coordinate rounding
(about 1e-6); likewise frame1 at t = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.warp import backward_warp

MASK_LIMIT = 20.0  # |fusion logit| bound: keeps sigmoid(+-m) > 0 so the t = 0 / t = 1 weights stay exact


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.PReLU(c_out))


def as_time(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """t as a float, a (b,) tensor or a (b, 1, 1, 1) tensor -> (b, 1, 1, 1) on `like`'s device and dtype."""
    t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
    if t.numel() == 1:
        return t.reshape(1, 1, 1, 1).expand(batch, 1, 1, 1)
    if t.numel() != batch:
        raise ValueError(f"t holds {t.numel()} values for a batch of {batch}")
    return t.reshape(batch, 1, 1, 1)


class FlowBlock(nn.Module):
    """One level: input at 1/`scale`, features at 1/(4 `scale`), a (u, m) residual back at full size."""

    def __init__(self, in_ch: int, num_feat: int, num_conv: int) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(in_ch, num_feat // 2, 2), _conv(num_feat // 2, num_feat, 2))
        self.body = nn.Sequential(*[_conv(num_feat, num_feat) for _ in range(num_conv)])
        self.tail = nn.ConvTranspose2d(num_feat, 5, 4, 2, 1)  # (u0, u1, m) at 1/(2 scale)

    def forward(self, images: Tensor, flow: Tensor | None, scale: int) -> tuple[Tensor, Tensor]:
        h, w = images.shape[-2:]
        x = images
        if flow is not None:
            x = torch.cat([x, flow], 1)
        if scale != 1:
            x = F.interpolate(x, scale_factor=1 / scale, mode="bilinear", align_corners=False)
            if flow is not None:  # displacements shrink with the image
                x = torch.cat([x[:, : images.shape[1]], x[:, images.shape[1] :] / scale], 1)
        feat = self.head(x)
        feat = self.body(feat) + feat
        out = F.interpolate(self.tail(feat), size=(h, w), mode="bilinear", align_corners=False)
        return out[:, :4] * (2 * scale), out[:, 4:5]  # (b, 4, h, w) pixels at full size, (b, 1, h, w)


class RefineNet(nn.Module):
    """Small two-level U-Net on the warped frames and the fusion: a residual for detail the warps miss."""

    def __init__(self, in_ch: int, num_feat: int) -> None:
        super().__init__()
        c = num_feat
        self.enc0 = _conv(in_ch, c)
        self.enc1 = nn.Sequential(_conv(c, 2 * c, 2), _conv(2 * c, 2 * c))
        self.enc2 = nn.Sequential(_conv(2 * c, 4 * c, 2), _conv(4 * c, 4 * c))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.PReLU(2 * c))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * c, c, 4, 2, 1), nn.PReLU(c))
        self.out = nn.Conv2d(2 * c, 3, 3, 1, 1)
        nn.init.zeros_(self.out.weight)  # start as the plain fusion; the residual is learned
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        d1 = self.up2(self.enc2(e1))
        d0 = self.up1(torch.cat([d1, e1], 1))
        return self.out(torch.cat([d0, e0], 1))


class InterpolationNet(nn.Module):
    """`forward(frame0, frame1, t) -> frame_t`: frames (b, 3, h, w) in [0, 1], t a float or (b,) in [0, 1].

    num_feat / num_conv: one entry per coarse-to-fine block, whose inputs are downscaled by `scales`.
    Any h, w: inputs are edge-padded to a multiple of 4 * max(scales) and the output cropped back.
    """

    def __init__(
        self,
        num_feat: Sequence[int] = (192, 128, 96),
        num_conv: Sequence[int] = (6, 6, 6),
        scales: Sequence[int] = (4, 2, 1),
        refine_feat: int = 32,
    ) -> None:
        super().__init__()
        if not (len(num_feat) == len(num_conv) == len(scales)) or not scales:
            raise ValueError(f"num_feat {num_feat}, num_conv {num_conv} and scales {scales} need one entry per level")
        self.scales = [int(s) for s in scales]
        self.scale = 1  # output size / input size, for the framework
        # the first block sees frame0, frame1, t; later ones also both warps (6) and the fusion logit (1)
        ins = [7] + [14] * (len(scales) - 1)
        self.blocks = nn.ModuleList(
            FlowBlock(c_in + (4 if i else 0), f, n) for i, (c_in, f, n) in enumerate(zip(ins, num_feat, num_conv))
        )
        self.refine = RefineNet(3 * 5 + 5, refine_feat)  # frames, warps, fusion; flows, logit
        self.pad_multiple = 4 * max(self.scales)  # the coarsest block works at 1/(4 max(scales)); U-Net needs 4

    def example_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        return torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48), torch.tensor([0.5, 0.25])

    def forward(self, frame0: Tensor, frame1: Tensor, t: Tensor | float) -> Tensor:
        return self.interpolate(frame0, frame1, t)["frame"]

    def interpolate(self, frame0: Tensor, frame1: Tensor, t: Tensor | float) -> dict[str, Tensor]:
        """The frame at t plus what produced it: flows t->0 / t->1, fusion weight of frame0, both warps."""
        if frame0.shape != frame1.shape:
            raise ValueError(f"frame0 {tuple(frame0.shape)} and frame1 {tuple(frame1.shape)} differ in shape")
        b, _, h, w = frame0.shape
        t = as_time(t, b, frame0)  # (b, 1, 1, 1)
        ph, pw = (-h) % self.pad_multiple, (-w) % self.pad_multiple
        f0 = F.pad(frame0, (0, pw, 0, ph), mode="replicate")
        f1 = F.pad(frame1, (0, pw, 0, ph), mode="replicate")
        t_map = t.expand(b, 1, *f0.shape[-2:])

        u = m = None
        warp0, warp1 = f0, f1
        for i, (block, scale) in enumerate(zip(self.blocks, self.scales)):
            if i == 0:
                du, dm = block(torch.cat([f0, f1, t_map], 1), None, scale)
                u, m = du, dm
            else:
                images = torch.cat([f0, f1, warp0, warp1, t_map, m], 1)
                du, dm = block(images, u, scale)
                u, m = u + du, m + dm
            flow_t0, flow_t1 = t * u[:, :2], (1 - t) * u[:, 2:]
            warp0, warp1 = backward_warp(f0, flow_t0), backward_warp(f1, flow_t1)

        m = m.clamp(-MASK_LIMIT, MASK_LIMIT)
        a, c = (1 - t) * torch.sigmoid(m), t * torch.sigmoid(-m)
        weight0 = a / (a + c)  # (b, 1, h, w): exactly 1 at t = 0, 0 at t = 1
        fused = weight0 * warp0 + (1 - weight0) * warp1
        residual = self.refine(torch.cat([f0, f1, warp0, warp1, fused, flow_t0, flow_t1, m], 1))
        frame = fused + 4 * t * (1 - t) * residual
        crop = (..., slice(0, h), slice(0, w))
        return {
            "frame": frame[crop],
            "flow_t0": flow_t0[crop],
            "flow_t1": flow_t1[crop],
            "weight0": weight0[crop],
            "warp0": warp0[crop],
            "warp1": warp1[crop],
        }
