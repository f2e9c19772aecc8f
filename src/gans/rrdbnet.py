"""RRDBNet, the ESRGAN / Real-ESRGAN generator (Wang et al. 2018, 2021).

Parameter names and layout follow the original ESRGAN/BasicSR code exactly (`conv_first`,
`body.N.rdb1.conv1`..`conv5`, `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`), so a state dict
is interchangeable with community ESRGAN x4 `.pth` files and with spandrel's ESRGAN architecture.

The network always upsamples x4 (two nearest-neighbour x2 steps). For scale 2 and 1 the input is first
pixel-unshuffled by 2 or 4 (as BasicSR / Real-ESRGAN x2 do): the trunk then runs at a quarter/sixteenth of
the pixels, and `conv_first` sees `num_in_ch * 4` or `* 16` channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _scaled_kaiming_(convs: list[nn.Conv2d], scale: float) -> None:
    """Kaiming init shrunk by `scale`: deep residual trunks start close to identity (BasicSR uses 0.1)."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        conv.weight.data.mul_(scale)
        nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the block input and all earlier outputs."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = nn.Conv2d(f, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(f + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(f + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(f + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(f + 4 * g, f, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _scaled_kaiming_([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: Tensor) -> Tensor:  # (b, f, h, w) -> (b, f, h, w)
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + 0.2 * x5  # residual scaling 0.2 keeps the 69-layer-deep trunk stable without BN


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside one more scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4 (got {scale})")
        self.scale = scale
        self.unshuffle = 4 // scale  # 1 (x4), 2 (x2) or 4 (x1): input pixel-unshuffle factor
        self.multiple = self.unshuffle  # input sides it groups pixels by (tiles start on multiples of it)
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, c_out, h*scale, w*scale)
        h, w = x.shape[-2:]
        if self.unshuffle > 1:
            # pad to a multiple of the unshuffle factor (reflect, as spandrel does) and crop the output back
            u = self.unshuffle
            x = F.pad(x, (0, -w % u, 0, -h % u), mode="reflect")
            x = F.pixel_unshuffle(x, u)  # (b, c*u*u, h/u, w/u)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))  # long skip over the whole trunk
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : h * self.scale, : w * self.scale]
