"""Colorization generator: a U-Net whose encoder is a torchvision ResNet (DeOldify's design, Antic 2018).

Luminance (b, 1, h, w) in [0, 1] in, chroma (b, 2, h, w) out (the task's colour space, divided by
color.CHROMA_SCALE); the caller recombines it with the luminance, so the output never loses input detail.

- encoder: ResNet18/34 (ImageNet weights through restoregan.pretrained, or random with pretrained=false),
  fed the luminance replicated to three channels and ImageNet-normalised; taps at 1/2, 1/4, 1/8, 1/16, 1/32;
- decoder: five x2 steps (bilinear, then 3x3 convs, spectral- and/or batch-normalised) with the encoder skips, SAGAN
  self-attention after the first step (1/16 resolution, where it is cheap and sees the whole image);
- head: the full-resolution luminance joins before the last convs; the last conv starts at zero, so an
  untrained model outputs grey rather than random colours.
Any input size works: it is reflect-padded to a multiple of 32 and the output cropped back.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from restoregan.pretrained import torchvision_model

ENCODERS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_CHANNELS = (64, 64, 128, 256, 512)  # ResNet18/34 at 1/2 (stem), 1/4, 1/8, 1/16, 1/32


def conv3(c_in: int, c_out: int, sn: bool = True) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
    return spectral_norm(conv) if sn else conv


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019): every position attends to all others; gamma starts at 0,
    so the block begins as the identity and the network decides how much global context to mix in."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = spectral_norm(nn.Conv1d(channels, max(channels // 8, 1), 1, bias=False))
        self.key = spectral_norm(nn.Conv1d(channels, max(channels // 8, 1), 1, bias=False))
        self.value = spectral_norm(nn.Conv1d(channels, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, c, h, w)
        b, c, h, w = x.shape
        flat = x.flatten(2)  # (b, c, n)
        q, k, v = self.query(flat), self.key(flat), self.value(flat)
        attn = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (b, n, c)
        return x + self.gamma * attn.transpose(1, 2).reshape(b, c, h, w)


class UpBlock(nn.Module):
    """x2 bilinear, concatenate the skip, two 3x3 convs + ReLU: spectrally normalised (GAN-stable) and/or
    batch-normalised (trains faster from scratch)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, sn: bool = True, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3(c_in + c_skip, c_out, sn)
        self.conv2 = conv3(c_out, c_out, sn)
        self.norm1 = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(self.norm1(self.conv1(torch.cat([x, skip], dim=1))))
        return F.relu(self.norm2(self.conv2(x)))


class ColorizeUNet(nn.Module):
    def __init__(
        self,
        encoder: str = "resnet34",
        pretrained: bool = True,
        decoder_channels: Sequence[int] = (512, 256, 128, 64, 32),
        attention: bool = True,
        num_out_ch: int = 2,
        spectral_norm: bool = True,
        batch_norm: bool = False,
    ) -> None:
        """spectral_norm / batch_norm: of the decoder convs (the encoder is a stock ResNet)."""
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"ColorizeUNet: encoder must be one of {sorted(ENCODERS)}, got {encoder!r}")
        if len(decoder_channels) != 5:
            raise ValueError(f"ColorizeUNet: decoder_channels needs 5 entries (1/16 ... 1/1), got {list(decoder_channels)}")
        builder, weights = ENCODERS[encoder]
        resnet = torchvision_model(
            builder, weights if pretrained else None, what=f"{encoder} colorization encoder", switch="pretrained_backbones"
        )
        self.scale = 1
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)  # 1/2
        self.layer1 = nn.Sequential(resnet.maxpool, resnet.layer1)  # 1/4
        self.layer2, self.layer3, self.layer4 = resnet.layer2, resnet.layer3, resnet.layer4  # 1/8, 1/16, 1/32
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        d = list(decoder_channels)
        skips = ENCODER_CHANNELS[3::-1]  # layer3, layer2, layer1, stem
        ins = [ENCODER_CHANNELS[4], *d[:3]]
        self.up = nn.ModuleList(
            UpBlock(c_in, c_skip, c_out, spectral_norm, batch_norm) for c_in, c_skip, c_out in zip(ins, skips, d[:4])
        )
        self.attention = SelfAttention(d[0]) if attention else nn.Identity()
        # full resolution: the luminance itself is the last skip
        self.up_full = UpBlock(d[3], 1, d[4], spectral_norm, batch_norm)
        self.head = nn.Conv2d(d[4], num_out_ch, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.rand(2, 1, 64, 48),)  # batch 2: the encoder's BatchNorm trains on batch statistics

    def forward(self, lum: Tensor) -> Tensor:  # (b, 1, h, w) -> (b, 2, h, w)
        if lum.dim() != 4 or lum.shape[1] != 1:
            raise ValueError(f"ColorizeUNet takes luminance (b, 1, h, w), got {tuple(lum.shape)}")
        h, w = lum.shape[-2:]
        ph, pw = -h % 32, -w % 32
        x = F.pad(lum, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        rgb = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        s1 = self.stem(rgb)
        s2 = self.layer1(s1)
        s3 = self.layer2(s2)
        s4 = self.layer3(s3)
        feat = self.layer4(s4)
        feat = self.attention(self.up[0](feat, s4))  # (b, d0, h/16, w/16)
        for block, skip in zip(self.up[1:], (s3, s2, s1)):
            feat = block(feat, skip)
        feat = self.up_full(feat, x)  # (b, d4, h, w)
        return self.head(feat)[..., :h, :w]
