"""Pretrained ImageNet backbones: hash-checked, loaded weights-only, with an error that says what to do offline.

Perceptual loss (VGG19), LPIPS (AlexNet/VGG/SqueezeNet), the colorization encoder (ResNet) and FID's Inception
all come through here, so a machine without internet fails in one place with one message, and tests opt into
random weights explicitly (`pretrained: false` in config) instead of getting them silently.

A weights file is data, never code, and never trusted for sitting in the cache: its published name carries
the first hex digits of its sha256 (`vgg19-dcbb9e9d.pth`), and the file in $TORCH_HOME/hub/checkpoints is
hashed and compared with them before anything reads it, every time (torch.hub only checks while
downloading). Only then is it read, with `torch.load(weights_only=True)`. A mismatch is `WeightsHashError`, a
hard error: the file is someone else's, and quietly running without it would hide that.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable

import torch
import torchvision

# torch-fidelity's Inception (what torchmetrics' FID runs); sha256 6726825d0af5f729...
FID_INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                     "weights-inception-2015-12-05-6726825d.pth")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


class MissingWeightsError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable."""


class WeightsHashError(ValueError):
    """A cached weights file whose sha256 is not the one its published name carries; it is not loaded."""


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def published_hash(url: str) -> str:
    """The sha256 prefix in a published file name (`resnet18-f37072fd.pth` -> `f37072fd`)."""
    found = _HASH_IN_NAME.search(os.path.basename(url))
    if found is None:
        raise ValueError(f"{url}: the file name carries no sha256 prefix to check the download against")
    return found.group(1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_weights_file(url: str, what: str, switch: str, fallback: str | None = None) -> Path:
    """The cached copy of `url` under TORCH_HOME, downloaded if absent, whose sha256 matches its name.

    `what` names the consumer (e.g. "VGG19 perceptual loss"); `switch` names the config key that selects
    random initialisation instead, so the offline error tells the user both ways out. `fallback` replaces that
    advice where a random backbone would make no sense (a metric).
    """
    expected = published_hash(url)
    target = hub_checkpoint_dir() / os.path.basename(url)
    if not target.is_file():
        fallback = fallback or (
            f"or set `{switch}=false` to use a randomly initialised backbone (only meaningful for tests)"
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # written aside and moved into place by torch.hub, checked against the hash while downloading
            torch.hub.download_url_to_file(url, str(target), hash_prefix=expected, progress=False)
        except Exception as err:  # URLError offline, HTTPError, a download whose hash does not match...
            reason = " ".join(str(err).split()) or type(err).__name__
            raise MissingWeightsError(
                f"{what}: pretrained ImageNet weights are not available ({type(err).__name__}: {reason}). "
                f"Download {url} and save it as {target} (set TORCH_HOME to use another cache directory), "
                f"{fallback}."
            ) from err
        _verified.add(_identity(target))  # download_url_to_file checked the hash as the bytes came in
    if _identity(target) not in _verified:  # hashing VGG19 reads 548 MB: once per file version and process
        actual = sha256_file(target)
        if not actual.startswith(expected):
            raise WeightsHashError(
                f"{target}: its sha256 ({actual[:len(expected)]}...) does not match the published one "
                f"({expected}...) in its name, so it is not loaded ({what}); replace it with a fresh download of "
                f"{url} saved as {target}"
            )
        _verified.add(_identity(target))
    return target


_verified: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files whose hash matched in this process


def _identity(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def load_state_dict_from_url(url: str, what: str, switch: str, fallback: str | None = None) -> dict[str, torch.Tensor]:
    """A hash-checked (`verified_weights_file`) state dict, read weights-only."""
    path = verified_weights_file(url, what, switch, fallback)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the published file is plain tensors: this cannot happen short of a torch change
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise WeightsHashError(f"{path}: not loaded: it is not a plain-tensor state dict ({reason})") from None


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
