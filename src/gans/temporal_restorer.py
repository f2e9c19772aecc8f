"""A recurrent, bidirectional film restorer that aligns its neighbours with optical flow, in the spirit of BasicVSR
(Chan et al., CVPR 2021) and RTN (Wan et al., "Bringing Old Films Back to Life", CVPR 2022); written here.

`net(x)`: a clip (b, T, 3, h, w) in [0, 1] -> restored clip (b, T, 3, h, w), any T >= 1, h and w.

Old-film damage is temporal: dust and grain are new in every frame, scratches wander, flicker changes the
exposure from frame to frame. What hides under a speck in one frame shows in the next, so each frame is restored
from features carried along the whole clip:

    1. flow: a small coarse-to-fine network (`FlowNet`, three levels at 1/8, 1/4 and 1/2 of the frame) estimates
       the flow from each frame to its two neighbours on the damaged frames themselves; trained with the
       restoration loss and, through `forward_with_flows`, a photometric loss on the clean targets
       (`restoregan.tasks.restore_video`);
    2. features at half resolution (a stride-2 convolution), propagated backwards (t = T-1 .. 0) and then
       forwards (t = 0 .. T-1): at each step the previous state is warped onto the current frame with the flow
       (`restoregan.gans.warp.backward_warp`) and fused with the frame's own features (and, going forwards, with
       the backward state of the same frame) by residual blocks;
    3. reconstruction at full resolution: both states, pixel-shuffled up, fused with the frame's full-resolution
       features; the output is a correction added to the input frame (an untrained net is the identity).

A clip with a scene cut must be cut there by the caller: state carried across a cut would paste the old scene
into the new one (the film stage does this, `restoregan.inference.clip_stage`). Sides are padded (replicate) to a
multiple of 8 and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.warp import backward_warp, resize_flow


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class FlowNet(nn.Module):
    """Flow from frame a to frame b, (b, 2, h, w) in pixels (backward_warp(b, flow) ~ a), estimated at 1/8, 1/4
    and 1/2 of the frame, each level refining the coarser one's upsampled flow; returned at full size."""

    levels = (8, 4, 2)

    def __init__(self, num_feat: int = 24, num_conv: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for _ in self.levels:
            layers = [_conv(8, num_feat)] + [_conv(num_feat, num_feat) for _ in range(num_conv - 2)]
            last = nn.Conv2d(num_feat, 2, 3, 1, 1)
            nn.init.zeros_(last.weight)  # start at zero flow: an untrained net aligns nothing, it guesses nothing
            nn.init.zeros_(last.bias)
            self.blocks.append(nn.Sequential(*layers, last))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        h, w = a.shape[-2:]
        flow = None
        for block, s in zip(self.blocks, self.levels):
            size = (h // s, w // s)
            a_s = F.interpolate(a, size=size, mode="area")
            b_s = F.interpolate(b, size=size, mode="area")
            flow = a_s.new_zeros(a_s.shape[0], 2, *size) if flow is None else resize_flow(flow, size)
            warped = backward_warp(b_s, flow)
            flow = flow + block(torch.cat([a_s, warped, flow], 1))
        return resize_flow(flow, (h, w))


def takes_clips(net: nn.Module) -> bool:
    """Does `net` take clips (b, T, c, h, w) rather than images? Declared by the network (`temporal = True`), so
    tasks and exporters ask this, never the class name."""
    return getattr(net, "temporal", False) is True


class TemporalRestorer(nn.Module):
    """num_feat: channels of the propagated (half-resolution) state; num_blocks: residual blocks per propagation
    step; flow_feat: the flow net's width. Input and output are RGB clips (b, T, 3, h, w)."""

    temporal = True  # takes a clip, not an image (takes_clips)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 48, num_blocks: int = 2,
                 flow_feat: int = 24, scale: int = 1) -> None:
        super().__init__()
        if scale != 1:
            raise ValueError(f"TemporalRestorer keeps the frame size: scale must be 1, got {scale}")
        if num_in_ch != num_out_ch:
            raise ValueError(f"TemporalRestorer adds a correction to its input: num_in_ch ({num_in_ch}) must equal "
                             f"num_out_ch ({num_out_ch})")
        self.scale, self.multiple = 1, 8
        c, c_full = num_feat, max(num_feat // 2, 8)
        self.flow = FlowNet(flow_feat)
        self.feat_full = nn.Sequential(_conv(num_in_ch, c_full), _conv(c_full, c_full))
        self.feat_half = nn.Sequential(_conv(c_full, c, stride=2), ResBlock(c))
        self.backward_fuse = nn.Sequential(_conv(2 * c, c), *(ResBlock(c) for _ in range(num_blocks)))
        self.forward_fuse = nn.Sequential(_conv(3 * c, c), *(ResBlock(c) for _ in range(num_blocks)))
        self.up = nn.Conv2d(2 * c, 4 * c_full, 1)  # pixel shuffle x2 -> (c_full, h, w)
        self.recon = nn.Sequential(_conv(2 * c_full, c_full), nn.Conv2d(c_full, num_out_ch, 3, 1, 1))
        nn.init.zeros_(self.recon[-1].weight)  # the identity at the start: the correction is zero
        nn.init.zeros_(self.recon[-1].bias)

    def example_inputs(self) -> tuple[Tensor]:
        """A clip of 3 frames with sides that are no multiple of 8 (the padding is exercised)."""
        return (torch.rand(1, 3, self.feat_full[0][0].in_channels, 18, 27),)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_flows(x)[0]

    def forward_with_flows(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(restored clip, flows from each frame to the next (b, T-1, 2, h, w), flows from each frame to the one
        before (b, T-1, 2, h, w)); the flows are None for a single frame. Flows are at the input's size."""
        if x.ndim != 5:
            raise ValueError(f"TemporalRestorer takes a clip (b, T, c, h, w), got a tensor of shape {tuple(x.shape)}")
        b, t, ch, h, w = x.shape
        m = self.multiple
        frames = x.reshape(b * t, ch, h, w)
        if h % m or w % m:
            frames = F.pad(frames, (0, -w % m, 0, -h % m), mode="replicate")
        hp, wp = frames.shape[-2:]
        full = self.feat_full(frames)
        half = self.feat_half(full)
        full, half = full.view(b, t, *full.shape[1:]), half.view(b, t, *half.shape[1:])
        clip = frames.view(b, t, ch, hp, wp)

        to_next = to_prev = None
        if t > 1:  # one pass of the flow net for all pairs: frame k -> k+1 and frame k+1 -> k
            first, second = clip[:, :-1].reshape(-1, ch, hp, wp), clip[:, 1:].reshape(-1, ch, hp, wp)
            flows = self.flow(torch.cat([first, second]), torch.cat([second, first]))
            to_next = flows[: b * (t - 1)].view(b, t - 1, 2, hp, wp)
            to_prev = flows[b * (t - 1):].view(b, t - 1, 2, hp, wp)
        size = half.shape[-2:]
        if t > 1:  # the flows at the state's resolution, all pairs at once
            next_half = resize_flow(to_next.flatten(0, 1), size).view(b, t - 1, 2, *size)
            prev_half = resize_flow(to_prev.flatten(0, 1), size).view(b, t - 1, 2, *size)

        backward: list[Tensor] = [None] * t  # type: ignore[list-item]
        state = torch.zeros_like(half[:, 0])
        for k in reversed(range(t)):
            if k < t - 1:
                state = backward_warp(state, next_half[:, k])
            state = self.backward_fuse(torch.cat([half[:, k], state], 1))
            backward[k] = state
        outputs = []
        state = torch.zeros_like(half[:, 0])
        for k in range(t):
            if k > 0:
                state = backward_warp(state, prev_half[:, k - 1])
            state = self.forward_fuse(torch.cat([half[:, k], backward[k], state], 1))
            up = F.leaky_relu(F.pixel_shuffle(self.up(torch.cat([state, backward[k]], 1)), 2), 0.1)
            outputs.append(clip[:, k] + self.recon(torch.cat([up, full[:, k]], 1)))
        out = torch.stack(outputs, 1)[..., :h, :w]
        if to_next is None:
            return out, None, None
        return out, to_next[..., :h, :w], to_prev[..., :h, :w]
