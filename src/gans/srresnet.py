"""SRResNet, the SRGAN generator (Ledig et al. 2017), in BasicSR's MSRResNet form.

Differences from the paper, as in BasicSR: no BatchNorm in the residual blocks (BN hurts PSNR and brings
train/test discrepancies), LeakyReLU(0.1) instead of PReLU, and a global residual: the network predicts the
difference from the bilinearly upsampled input, which makes early training much faster.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity skip."""

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv1, self.conv2):  # small init: each block starts close to identity
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:  # (b, f, h, w) -> (b, f, h, w)
        return x + self.conv2(self.relu(self.conv1(x)))


class SRResNet(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet supports scale 2, 3 or 4 (got {scale})")
        if num_in_ch != num_out_ch:
            raise ValueError(f"SRResNet adds the upsampled input to its output: num_in_ch ({num_in_ch}) "
                             f"must equal num_out_ch ({num_out_ch})")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        # sub-pixel upsampling: x2/x3 in one step, x4 as two x2 steps
        step = 2 if scale == 4 else scale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * step * step, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if scale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(step)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, c, h*scale, w*scale)
        feat = self.lrelu(self.conv_first(x))
        feat = self.body(feat)
        feat = self.lrelu(self.pixel_shuffle(self.upconv1(feat)))  # (b, f, h*step, w*step)
        if self.upconv2 is not None:
            feat = self.lrelu(self.pixel_shuffle(self.upconv2(feat)))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + out
