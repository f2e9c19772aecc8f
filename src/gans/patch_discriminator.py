"""Conditional PatchGAN discriminator (pix2pix, Isola et al. 2017).

Judges overlapping patches (70x70 receptive field with the default 3 layers) rather than the whole image, so
it works at any input size and focuses on local colour plausibility. Conditional: it sees the condition
(e.g. the grey input, 1 channel) concatenated with the image (3 channels), so it can tell "wrong colours
for this scene" from "wrong colours" (the task does the concatenation). Spectral norm (optional) replaces
BatchNorm and keeps the critic's Lipschitz constant in check, which keeps short GAN phases stable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(
        self, num_in_ch: int = 4, num_feat: int = 64, num_layers: int = 3, use_spectral_norm: bool = True
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        norm = (lambda c: nn.Identity()) if use_spectral_norm else nn.BatchNorm2d
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = num_feat
        for i in range(1, num_layers + 1):
            c_out = num_feat * min(2**i, 8)
            stride = 2 if i < num_layers else 1  # the last feature layer keeps resolution (pix2pix)
            # a bias before BatchNorm would be cancelled by its mean subtraction
            layers += [wrap(nn.Conv2d(c, c_out, 4, stride, 1, bias=use_spectral_norm)), norm(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))  # (b, 1, h', w') patch logits
        self.body = nn.Sequential(*layers)

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.rand(2, self.num_in_ch, 64, 64),)

    def forward(self, x: Tensor) -> Tensor:  # (b, num_in_ch, h, w) -> (b, 1, ~h/2^num_layers, ~w/2^num_layers)
        if x.shape[1] != self.num_in_ch:
            raise ValueError(
                f"PatchDiscriminator expects {self.num_in_ch} channels (condition + image), got {x.shape[1]}"
            )
        return self.body(x)
