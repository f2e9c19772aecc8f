"""Perceptual (VGG feature) loss of SRGAN / ESRGAN / Real-ESRGAN.

Layers are named after torchvision's VGG19 convolutions, `conv<block>_<index>` (conv1_1 ... conv5_4);
`pre_activation` picks where each is tapped: True = the conv output before its ReLU (ESRGAN: sharper, more
informative features), False = after the ReLU (SRGAN's "VGG54" is conv5_4 with pre_activation=False).
The VGG is truncated after the deepest requested layer, frozen and kept in eval mode. Its weights are not
saved in state dicts (they are ImageNet constants, 80 MB per checkpoint otherwise).
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from restoregan.pretrained import torchvision_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names(features: nn.Sequential) -> list[str]:
    """Name each module of VGG19 `features`: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..."""
    names, block, index = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
        else:  # MaxPool2d closes a block
            names.append(f"pool{block}")
            block, index = block + 1, 0
    return names


class PerceptualLoss(nn.Module):
    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        pre_activation: bool = True,
        use_input_norm: bool = True,
        criterion: Literal["l1", "mse"] = "l1",
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        layer_weights = dict(layer_weights) if layer_weights is not None else {"conv5_4": 1.0}
        if criterion not in ("l1", "mse"):
            raise ValueError(f"PerceptualLoss: criterion must be 'l1' or 'mse', got {criterion!r}")
        vgg = torchvision_model(
            torchvision.models.vgg19,
            torchvision.models.VGG19_Weights.IMAGENET1K_V1 if pretrained else None,
            what="VGG19 perceptual loss",
            switch="pretrained_backbones",
        )
        names = vgg19_layer_names(vgg.features)
        conv_names = [n for n in names if n.startswith("conv")]
        unknown = sorted(set(layer_weights) - set(conv_names))
        if unknown or not layer_weights:
            raise ValueError(f"PerceptualLoss: unknown VGG19 layers {unknown}; choose from {', '.join(conv_names)}")

        # index of the module whose output is tapped: the conv itself, or the ReLU right after it
        offset = 0 if pre_activation else 1
        self.taps = {names.index(layer) + offset: layer for layer in layer_weights}
        self.layer_weights = layer_weights
        self.pre_activation = pre_activation
        self.criterion = criterion
        # truncate after the deepest tap; non-inplace ReLUs, or they would overwrite the tapped conv outputs
        layers = [nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in vgg.features[: max(self.taps) + 1]]
        self.vgg = nn.Sequential(*layers).eval().requires_grad_(False)

        self.use_input_norm = use_input_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_state_dict_post_hook(_drop_vgg_keys)
        self.register_load_state_dict_pre_hook(_fill_vgg_keys)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # a fixed feature extractor, whatever the training mode of its owner
        return self

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """{layer: feature map} for x in [0, 1], (b, 3, h, w)."""
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for i, module in enumerate(self.vgg):
            x = module(x)
            if i in self.taps:
                out[self.taps[i]] = x
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred_feats = self.features(pred)
        with torch.no_grad():  # no gradient is needed through the target
            target_feats = self.features(target.detach())
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        return sum(w * dist(pred_feats[name], target_feats[name]) for name, w in self.layer_weights.items())


def _drop_vgg_keys(module: PerceptualLoss, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "vgg.")]:
        del state_dict[key]


def _fill_vgg_keys(module: PerceptualLoss, state_dict: dict, prefix: str, *args) -> None:
    # checkpoints hold no VGG weights: keep the ones this module was built with (strict loading passes)
    for key, value in module.vgg.state_dict(prefix=prefix + "vgg.").items():
        state_dict.setdefault(key, value)
