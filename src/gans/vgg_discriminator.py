"""VGG-style discriminator of SRGAN / ESRGAN (BasicSR's VGGStyleDiscriminator layout).

Five stages, each a stride-1 3x3 conv and a stride-2 4x4 conv with BatchNorm and LeakyReLU(0.2); channels
f, 2f, 4f, 8f, 8f; then two dense layers to one logit. The dense layer fixes the input size: crops must be
`input_size` square, a multiple of 32 (five halvings).
"""

from __future__ import annotations

from torch import Tensor, nn


class VGGStyleDiscriminator(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32 != 0:
            raise ValueError(
                f"VGGStyleDiscriminator: input_size must be a positive multiple of 32 (five stride-2 stages), "
                f"got {input_size}; set the HR crop size (data.crop_size) accordingly"
            )
        self.input_size = input_size
        f = num_feat
        # (in, out) channels of the five stages
        chans = [(num_in_ch, f), (f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f), (8 * f, 8 * f)]
        for i, (c_in, c_out) in enumerate(chans):
            # stage 0 has no BN after its first conv (the paper: no BN on the input layer)
            setattr(self, f"conv{i}_0", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=i == 0))
            if i > 0:
                setattr(self, f"bn{i}_0", nn.BatchNorm2d(c_out, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(c_out, c_out, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(c_out, affine=True))
        self.num_stages = len(chans)
        side = input_size // 32
        self.linear1 = nn.Linear(8 * f * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, s, s) -> (b, 1) logits
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator was built for {self.input_size}x{self.input_size} inputs, "
                f"got {tuple(x.shape[-2:])}"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = feat.flatten(1)  # (b, 8f * (s/32)^2)
        return self.linear2(self.lrelu(self.linear1(feat)))
