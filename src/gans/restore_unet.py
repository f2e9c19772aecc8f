"""A small residual U-Net for film-damage removal (scale 1): `net(x)` (b, 3, h, w) in [0, 1] -> restored
(b, 3, h, w), any h and w.

Damage is local (grain, dust, scratches) or a per-pixel tone change (sepia, fading), and most of the frame is
fine as it is: the net predicts a correction added to its input, so an untrained net is close to the identity
and training time goes into the damage. Two stride-2 levels give a receptive field of about 40 pixels, enough
to fill a speck or a scratch from its surroundings; full-resolution skips keep the detail. Sides are reflect-
padded to a multiple of 2**num_levels and cropped back, which matches `restoregan.inference.tiled`'s default
tile alignment for scale 1 (multiples of 4 for two levels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class RestoreUNet(nn.Module):
    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 32, num_levels: int = 2, num_conv: int = 2,
        scale: int = 1,
    ) -> None:
        super().__init__()
        if scale != 1:
            raise ValueError(f"RestoreUNet keeps the input size: scale must be 1, got {scale}")
        if num_in_ch != num_out_ch:
            raise ValueError(
                f"RestoreUNet adds a correction to its input: num_in_ch ({num_in_ch}) must equal num_out_ch ({num_out_ch})"
            )
        self.scale, self.multiple = 1, 2**num_levels
        widths = [num_feat * 2**i for i in range(num_levels + 1)]  # e.g. 32, 64, 128
        self.conv_first = _conv(num_in_ch, widths[0])
        self.enc = nn.ModuleList([nn.Sequential(*(_conv(widths[0], widths[0]) for _ in range(num_conv - 1)))])
        self.down = nn.ModuleList()
        for i in range(1, num_levels + 1):
            self.down.append(_conv(widths[i - 1], widths[i], stride=2))
            self.enc.append(nn.Sequential(*(_conv(widths[i], widths[i]) for _ in range(num_conv))))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(num_levels)):
            self.up.append(nn.Conv2d(widths[i + 1], widths[i] * 4, 1))  # pixel shuffle x2: (b, w_i, 2h, 2w)
            convs = [_conv(2 * widths[i], widths[i]), *(_conv(widths[i], widths[i]) for _ in range(num_conv - 1))]
            self.dec.append(nn.Sequential(*convs))
        self.conv_last = nn.Conv2d(widths[0], num_out_ch, 3, 1, 1)
        nn.init.zeros_(self.conv_last.weight)  # start as the identity: the correction is zero
        nn.init.zeros_(self.conv_last.bias)

    def example_inputs(self) -> tuple[Tensor, ...]:
        """Not an upscaler: the shared model tests feed this (odd sides, so the padding is exercised)."""
        return (torch.rand(1, self.conv_first[0].in_channels, 18, 27),)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, c, h, w)
        h, w = x.shape[-2:]
        m = self.multiple
        xp = F.pad(x, (0, -w % m, 0, -h % m), mode="reflect") if (h % m or w % m) else x
        feat = self.enc[0](self.conv_first(xp))
        skips = [feat]
        for down, enc in zip(self.down, self.enc[1:]):
            feat = enc(down(feat))
            skips.append(feat)
        feat = skips.pop()
        for up, dec in zip(self.up, self.dec):
            feat = F.leaky_relu(F.pixel_shuffle(up(feat), 2), 0.2)
            feat = dec(torch.cat([feat, skips.pop()], dim=1))
        return (xp + self.conv_last(feat))[..., :h, :w]
