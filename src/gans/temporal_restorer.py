"""A recurrent, bidirectional film restorer that aligns its neighbours with optical flow, in the spirit of BasicVSR
(Chan et al., CVPR 2021) and RTN (Wan et al., "Bringing Old Films Back to Life", CVPR 2022); written here.

`net(x)`: a clip (b, T, 3, h, w) in [0, 1] -> restored clip (b, T, 3, h, w), any T >= 1, h and w.

Old-film damage is temporal: dust and grain are new in every frame, scratches wander, flicker changes the
exposure from frame to frame. What hides under a speck in one frame shows in the next, so each frame is restored
from its aligned neighbours and from features carried along the whole clip:

    1. flow between each frame and its neighbours, on the damaged frames themselves: OpenCV's DIS by default
       (`restoregan.gans.classical_flow`; unlearned, it aligns far better than a flow net learns to within a CPU
       budget), or `flow="learned"`: a small coarse-to-fine network (`FlowNet`, 1/8, 1/4 and 1/2 of the frame),
       trained with the restoration loss and, through `forward_with_flows`, a photometric loss on the clean targets
       (`restoregan.tasks.restore_video`);
    2. the `radius` neighbours on each side (the window shifted to stay inside the clip) warped onto each frame at
       full resolution; the frame, their median and the neighbours are the network's input per frame;
    3. features at half resolution (a stride-2 convolution), propagated backwards (t = T-1 .. 0) and then
       forwards (t = 0 .. T-1): at each step the previous state is warped onto the current frame with the flow
       (`restoregan.gans.warp.backward_warp`) and fused with the frame's own features (and, going forwards, with
       the backward state of the same frame) by residual blocks;
    4. reconstruction at full resolution: both states, pixel-shuffled up, fused with the frame's full-resolution
       features; the output is a correction added to the aligned median (radius 0: to the frame), so an untrained
       net outputs the median, which already removes most of what changes from frame to frame.

A clip with a scene cut must be cut there by the caller: state carried across a cut would paste the old scene
into the new one (the film stage does this, `restoregan.inference.clip_stage`). Sides are padded (replicate) to a
multiple of 8 and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.classical_flow import PRESETS, check_scratch_filter, dis_flows_between, pairs_within
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
    step; flow: "dis" (OpenCV's DIS on the damaged frames, `restoregan.gans.classical_flow`) or "learned" (the
    `FlowNet` here, width flow_feat, taught by the task's photometric loss); radius: neighbours on each side
    warped onto each frame at full resolution and given, with their median, to the reconstruction (0: none);
    context: a quarter-resolution level on each frame's propagated state before reconstruction (what a frame needs
    from farther away than the half-resolution state sees) and one more full-resolution convolution;
    scratch_filter: DIS reads each frame through a horizontal median this wide, so that its flow follows the scene,
    not the film's vertical scratches (0: off; `restoregan.gans.classical_flow`).
    Input and output are RGB clips (b, T, 3, h, w)."""

    temporal = True  # takes a clip, not an image (takes_clips)

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 48, num_blocks: int = 2,
                 flow_feat: int = 24, scale: int = 1, flow: str = "dis", radius: int = 2,
                 flow_preset: str = "medium", context: bool = False, scratch_filter: int = 0) -> None:
        super().__init__()
        if scale != 1:
            raise ValueError(f"TemporalRestorer keeps the frame size: scale must be 1, got {scale}")
        if num_in_ch != num_out_ch:
            raise ValueError(f"TemporalRestorer adds a correction to its input: num_in_ch ({num_in_ch}) must equal "
                             f"num_out_ch ({num_out_ch})")
        if flow not in ("dis", "learned"):
            raise ValueError(f"TemporalRestorer: flow must be 'dis' or 'learned', got {flow!r}")
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"TemporalRestorer: radius must be an integer >= 0, got {radius!r}")
        if flow_preset not in PRESETS:
            raise ValueError(f"TemporalRestorer: flow_preset must be one of {sorted(PRESETS)}, got {flow_preset!r}")
        self.scale, self.multiple = 1, 8
        self.num_in_ch, self.radius, self.flow_kind, self.flow_preset = num_in_ch, radius, flow, flow_preset
        self.scratch_filter = check_scratch_filter(scratch_filter)
        c, c_full = num_feat, max(num_feat // 2, 8)
        self.flow = FlowNet(flow_feat) if flow == "learned" else None
        # the frame, then (radius > 0) the median of it and its aligned neighbours, then those neighbours
        full_in = num_in_ch * (2 + 2 * radius) if radius else num_in_ch
        self.feat_full = nn.Sequential(_conv(full_in, c_full), _conv(c_full, c_full))
        self.feat_half = nn.Sequential(_conv(c_full, c, stride=2), ResBlock(c))
        self.backward_fuse = nn.Sequential(_conv(2 * c, c), *(ResBlock(c) for _ in range(num_blocks)))
        self.forward_fuse = nn.Sequential(_conv(3 * c, c), *(ResBlock(c) for _ in range(num_blocks)))
        self.context = None
        if context:  # a quarter-resolution level on each frame's state, and a deeper full-resolution head
            self.context = nn.ModuleDict({
                "down": nn.Sequential(_conv(c, 2 * c, stride=2), _conv(2 * c, 2 * c), _conv(2 * c, 2 * c)),
                "up": nn.Conv2d(2 * c, 4 * c, 1),  # pixel shuffle x2 -> (c, h / 2, w / 2)
                "fuse": _conv(2 * c, c)})
        self.up = nn.Conv2d(2 * c, 4 * c_full, 1)  # pixel shuffle x2 -> (c_full, h, w)
        head = [_conv(2 * c_full, c_full)] + ([_conv(c_full, c_full)] if context else [])
        self.recon = nn.Sequential(*head, nn.Conv2d(c_full, num_out_ch, 3, 1, 1))
        nn.init.zeros_(self.recon[-1].weight)  # the identity at the start: the correction is zero
        nn.init.zeros_(self.recon[-1].bias)

    def example_inputs(self) -> tuple[Tensor]:
        """A clip of 3 frames with sides that are no multiple of 8 (the padding is exercised)."""
        return (torch.rand(1, 3, self.num_in_ch, 18, 27),)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_flows(x)[0]

    def _flows(self, clip: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
        """Flows for every (i, j) of `pairs` and every clip of the batch, (len(pairs) * b, 2, h, w), pair-major."""
        b, t = clip.shape[:2]
        if self.flow is None:  # each frame converted (and filtered) once, however many pairs it is in
            index = [(n * t + i, n * t + j) for i, j in pairs for n in range(b)]
            return dis_flows_between(clip.flatten(0, 1), index, self.flow_preset, self.scratch_filter)
        return self.flow(torch.cat([clip[:, i] for i, _ in pairs]), torch.cat([clip[:, j] for _, j in pairs]))

    def _window(self, k: int, t: int) -> list[int]:
        """The neighbours aligned onto frame k: the 2 radius + 1 consecutive frames around k, shifted to stay
        inside the clip (the first frame gets frames 1 .. 2 radius), k itself left out."""
        span = 2 * self.radius + 1
        lo = min(max(0, k - self.radius), max(0, t - span))
        return [j for j in range(lo, min(t, lo + span)) if j != k]

    def _aligned(self, clip: Tensor, flows: dict[tuple[int, int], Tensor]) -> Tensor:
        """(b, T, c * (2 + 2 radius), h, w): each frame, the median of it and its neighbours warped onto it, and
        those neighbours (a clip shorter than 2 radius + 1 frames repeats the frame in the missing places)."""
        t = clip.shape[1]
        out = []
        for k in range(t):
            near = [backward_warp(clip[:, j], flows[(k, j)]) for j in self._window(k, t)]
            near += [clip[:, k]] * (2 * self.radius - len(near))
            median = torch.stack([clip[:, k], *near]).median(0).values
            out.append(torch.cat([clip[:, k], median, *near], 1))
        return torch.stack(out, 1)

    def forward_with_flows(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(restored clip, flows from each frame to the next (b, T-1, 2, h, w), flows from each frame to the one
        before (b, T-1, 2, h, w)); the flows are None when there is nothing to learn in them: a single frame, or
        flows by DIS. Flows are at the input's size."""
        if x.ndim != 5:
            raise ValueError(f"TemporalRestorer takes a clip (b, T, c, h, w), got a tensor of shape {tuple(x.shape)}")
        b, t, ch, h, w = x.shape
        m = self.multiple
        frames = x.reshape(b * t, ch, h, w)
        if h % m or w % m:
            frames = F.pad(frames, (0, -w % m, 0, -h % m), mode="replicate")
        hp, wp = frames.shape[-2:]
        clip = frames.view(b, t, ch, hp, wp)

        # one pass of the flow estimate for every pair used: each frame's window and its next and previous frame
        # (propagation)
        pairs = sorted(set(pairs_within(t, 1)) | {(k, j) for k in range(t) for j in self._window(k, t)})
        flows: dict[tuple[int, int], Tensor] = {}
        if pairs:
            est = self._flows(clip, pairs)
            flows = {p: est[n * b:(n + 1) * b] for n, p in enumerate(pairs)}
        inputs = self._aligned(clip, flows) if self.radius else clip
        # the correction is added to the aligned median: an untrained net already removes what changes from frame
        # to frame (dust, grain, flicker), and learning starts from there (much faster than from the frame itself)
        base = inputs[:, :, ch:2 * ch] if self.radius else clip
        full = self.feat_full(inputs.flatten(0, 1))
        half = self.feat_half(full)
        full, half = full.view(b, t, *full.shape[1:]), half.view(b, t, *half.shape[1:])
        size = half.shape[-2:]
        if t > 1:  # the neighbours' flows at the state's resolution, all pairs at once
            next_half = resize_flow(torch.cat([flows[(k, k + 1)] for k in range(t - 1)]), size).view(t - 1, b, 2, *size)
            prev_half = resize_flow(torch.cat([flows[(k + 1, k)] for k in range(t - 1)]), size).view(t - 1, b, 2, *size)

        backward: list[Tensor] = [None] * t  # type: ignore[list-item]
        state = torch.zeros_like(half[:, 0])
        for k in reversed(range(t)):
            if k < t - 1:
                state = backward_warp(state, next_half[k])
            state = self.backward_fuse(torch.cat([half[:, k], state], 1))
            backward[k] = state
        outputs = []
        state = torch.zeros_like(half[:, 0])
        for k in range(t):
            if k > 0:
                state = backward_warp(state, prev_half[k - 1])
            state = self.forward_fuse(torch.cat([half[:, k], backward[k], state], 1))
            feat = state
            if self.context is not None:  # what the frame needs from farther away (exposure, fade), not carried on
                far = F.leaky_relu(F.pixel_shuffle(self.context["up"](self.context["down"](state)), 2), 0.1)
                feat = self.context["fuse"](torch.cat([state, far], 1))
            up = F.leaky_relu(F.pixel_shuffle(self.up(torch.cat([feat, backward[k]], 1)), 2), 0.1)
            outputs.append(base[:, k] + self.recon(torch.cat([up, full[:, k]], 1)))
        out = torch.stack(outputs, 1)[..., :h, :w]
        if t == 1 or self.flow is None:
            return out, None, None
        to_next = torch.stack([flows[(k, k + 1)] for k in range(t - 1)], 1)[..., :h, :w]
        to_prev = torch.stack([flows[(k + 1, k)] for k in range(t - 1)], 1)[..., :h, :w]
        return out, to_next, to_prev
