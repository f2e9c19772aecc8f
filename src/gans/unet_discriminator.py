"""U-Net discriminator with spectral normalisation (Real-ESRGAN, Wang et al. 2021).

Gives one realness logit per pixel, so it judges local texture as well as global structure, which the
complex Real-ESRGAN degradations need. Spectral norm (instead of BN) keeps its training stable. Any input
whose sides are multiples of 8 (three stride-2 downsamplings) works.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # encoder: three stride-2 4x4 convs, f -> 2f -> 4f -> 8f
        self.conv1 = spectral_norm(nn.Conv2d(f, 2 * f, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(2 * f, 4 * f, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(4 * f, 8 * f, 4, 2, 1, bias=False))
        # decoder: bilinear x2 then 3x3 conv, 8f -> 4f -> 2f -> f
        self.conv4 = spectral_norm(nn.Conv2d(8 * f, 4 * f, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(4 * f, 2 * f, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(2 * f, f, 3, 1, 1, bias=False))
        # head
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, 1, h, w) logits
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"UNetDiscriminatorSN needs height and width divisible by 8, got {tuple(x.shape[-2:])}")
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = act(self.conv0(x))  # (b, f, h, w)
        x1 = act(self.conv1(x0))  # (b, 2f, h/2, w/2)
        x2 = act(self.conv2(x1))  # (b, 4f, h/4, w/4)
        x3 = act(self.conv3(x2))  # (b, 8f, h/8, w/8)

        x4 = act(self.conv4(up(x3)))  # (b, 4f, h/4, w/4)
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))  # (b, 2f, h/2, w/2)
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))  # (b, f, h, w)
        if self.skip_connection:
            x6 = x6 + x0

        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
