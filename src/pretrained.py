"""Pretrained ImageNet backbones, loaded the way torchvision does, with an error that says what to do offline.

Perceptual loss (VGG19), LPIPS (AlexNet/VGG) and the colorization encoder (ResNet) all come through here, so
a machine without internet fails in one place with one message, and tests opt into random weights explicitly
(`pretrained: false` in config) instead of getting them silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
import torchvision


class MissingWeightsError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable."""


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_state_dict_from_url(url: str, what: str, switch: str, fallback: str | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict cached under TORCH_HOME, downloading it if possible.

    `what` names the consumer (e.g. "VGG19 perceptual loss"); `switch` names the config key that selects
    random initialisation instead, so the error tells the user both ways out. `fallback` replaces that
    advice where a random backbone would make no sense (a metric).
    """
    fallback = fallback or (
        f"or set `{switch}=false` to use a randomly initialised backbone (only meaningful for tests)"
    )
    target = hub_checkpoint_dir() / os.path.basename(url)
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu", check_hash=False)
    except Exception as err:  # URLError offline, HTTPError, truncated file...
        raise MissingWeightsError(
            f"{what}: pretrained ImageNet weights are not available ({type(err).__name__}: {err}). "
            f"Download {url} and save it as {target} (set TORCH_HOME to use another cache directory), "
            f"{fallback}."
        ) from err


def torchvision_model(
    builder: Callable[..., torch.nn.Module],
    weights: torchvision.models.WeightsEnum | None,
    what: str,
    switch: str,
) -> torch.nn.Module:
    """Build a torchvision model; `weights=None` means random init, otherwise ImageNet weights or a clear error."""
    model = builder(weights=None)
    if weights is not None:
        model.load_state_dict(load_state_dict_from_url(weights.url, what, switch))
    return model
