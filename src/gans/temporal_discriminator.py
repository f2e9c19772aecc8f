"""Temporal PatchGAN discriminator for frame interpolation.

It sees a triplet stacked on channels, (frame0, middle, frame1) -> 9 channels, and gives one realness logit
per overlapping patch (pix2pix's PatchGAN layout, spectral norm instead of BatchNorm). Seeing the neighbours
lets it judge the middle frame as part of the motion (ghosting, doubled edges), not only as an image.
`InterpolationTask.discriminator_pair` builds the stacks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import spectral_norm


class TemporalPatchDiscriminator(nn.Module):
    """(b, 3 * num_frames, h, w) -> (b, 1, h / 2**num_down - 2, ...) patch logits; h, w >= 2**(num_down + 2).
    num_in_ch, when given, is the stack's channel count instead of 3 * num_frames (the film experiments set it: 18
    for a conditional temporal restorer's damaged and restored triplets)."""

    def __init__(self, num_frames: int = 3, num_feat: int = 64, num_down: int = 3, num_in_ch: int | None = None) -> None:
        super().__init__()
        self.num_in_ch = 3 * num_frames if num_in_ch is None else num_in_ch
        layers: list[nn.Module] = [nn.Conv2d(self.num_in_ch, num_feat, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = num_feat
        for _ in range(num_down - 1):  # stride-2 4x4 convs, channels doubling up to 8 * num_feat
            c_next = min(2 * c, 8 * num_feat)
            layers += [spectral_norm(nn.Conv2d(c, c_next, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = c_next
        layers += [spectral_norm(nn.Conv2d(c, c, 4, 1, 1)), nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def example_inputs(self) -> tuple[Tensor]:
        return (torch.rand(2, self.num_in_ch, 64, 64),)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.num_in_ch:
            raise ValueError(f"TemporalPatchDiscriminator takes {self.num_in_ch} channels (stacked frames), got {x.shape[1]}")
        return self.net(x)
