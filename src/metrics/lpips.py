"""LPIPS (Zhang et al. 2018) over the `lpips` package, with the project's offline error for the backbone.

`lpips.LPIPS(pnet_rand=False)` would fetch the ImageNet backbone through torchvision's legacy
`pretrained=True` path and fail offline with a bare URLError. Instead the backbone is built random
(`pnet_rand=True`) and its weights come through `restoregan.pretrained`, which raises
`MissingWeightsError` naming the file and TORCH_HOME, and checks a cached file against the sha256 in its name
before reading it weights-only. The linear calibration layers ship in the lpips wheel (trusted, as the package
itself is); they too are read here with `weights_only=True` rather than by lpips' own plain `torch.load`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lpips
import torch
from torch import Tensor, nn
from torchvision import models

from restoregan.pretrained import load_state_dict_from_url

# The torchvision checkpoints lpips 0.1.4 builds its trunks from (`tv.alexnet/vgg16/squeezenet1_1().features`).
BACKBONE_URLS = {
    "alex": models.AlexNet_Weights.IMAGENET1K_V1.url,
    "vgg": models.VGG16_Weights.IMAGENET1K_V1.url,
    "squeeze": models.SqueezeNet1_1_Weights.IMAGENET1K_V1.url,
}


class LPIPS(nn.Module):
    """LPIPS distance, lower is closer. `forward(pred, target)` takes (B,3,H,W) RGB in [0, 1], returns (B,)."""

    def __init__(self, net: str = "alex", pretrained: bool = True) -> None:
        super().__init__()
        if net not in BACKBONE_URLS:
            raise ValueError(f"LPIPS: unknown backbone {net!r}; choose one of {sorted(BACKBONE_URLS)}")
        # Fetch first: offline, fail before building anything.
        state = (
            load_state_dict_from_url(
                BACKBONE_URLS[net],
                what=f"LPIPS ({net} backbone)",
                switch="pretrained",
                fallback="or run evaluate.py with lpips=false to leave LPIPS out (it is never computed on a random backbone)",
            )
            if pretrained
            else None
        )
        with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            # pretrained=False: lpips would torch.load its linear layers itself; they are loaded below
            self.model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        _load_linear_layers(self.model, net)
        if state is not None:
            _load_backbone(self.model.net, state)
        self.model.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"LPIPS: shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.dim() == 3:
            pred, target = pred[None], target[None]
        return self.model(pred.float(), target.float(), normalize=True).flatten()  # normalize: [0,1] -> [-1,1]


def _load_linear_layers(model: nn.Module, net: str) -> None:
    """The calibrated 1x1 `lin*` layers of LPIPS v0.1, from the file inside the installed lpips package."""
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected or not state:
        raise ValueError(f"{path}: not the LPIPS linear layers of {net} (unexpected keys {unexpected[:3]})")


def _load_backbone(trunk: nn.Module, state: dict[str, Tensor]) -> None:
    """lpips splits torchvision's `features` into slices keeping the layer indices: `slice2.3.weight` is
    `features.3.weight`, so the mapping is by name and strict (a wrong checkpoint fails loudly)."""
    own = trunk.state_dict()
    mapped = {key: state["features." + key.split(".", 1)[1]] for key in own}
    trunk.load_state_dict(mapped, strict=True)
