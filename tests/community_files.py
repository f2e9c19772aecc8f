"""Community model files as their users hold them, built from the committed manifests (src/gans/manifests/<format>.json:
parameter names, shapes and dtypes of the published file) with random weights: no published file can be
downloaded here."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch


def manifest(fmt: str) -> dict:
    """A manifest as installed with the package (package data)."""
    return json.loads((resources.files("restoregan.gans") / "manifests" / f"{fmt}.json").read_text())


def random_state(fmt: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of the manifest's names and shapes: N(0, 1/fan_in)/2 for weight arrays, near 1 for 1-D scales
    (norm weights, variances, std), near 0 for biases; integer buffers (counters, index tables) zero, which
    indexes in range."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, dtype in manifest(fmt)["params"]:
        if dtype != "float32":
            state[name] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        value = torch.randn(shape, generator=gen)
        if name.split(".")[-1] in ("mean", "std"):  # DDColor's input normalisation (ImageNet's, roughly)
            state[name] = (0.45 if name.endswith("mean") else 0.225) + 0.01 * value
        elif len(shape) > 1:
            state[name] = value * (0.5 / max(1, int(np.prod(shape[1:]))) ** 0.5)
        elif name.endswith(("weight", "running_var", "beta", "gamma")):
            state[name] = 1 + 0.01 * value
        else:
            state[name] = 0.01 * value
    for name in [k for k in state if k.endswith(".weight_orig")]:  # spectral norm: its converged power iteration
        base = name.removesuffix("_orig")
        matrix, v = state[name].flatten(1), state[f"{base}_v"]
        for _ in range(30):  # top singular vectors by power iteration, as training leaves them
            u = torch.nn.functional.normalize(matrix @ v, dim=0)
            v = torch.nn.functional.normalize(matrix.T @ u, dim=0)
        state[f"{base}_u"], state[f"{base}_v"] = u, v
    return state


def save_as_user(fmt: str, folder: Path, state: dict | None = None) -> Path:
    """The file as its users hold it: a torch.save'd state dict, under `params` for BasicSR releases;
    RIFE's as train_log/flownet.pkl (its keys keep their `module.` prefixes)."""
    entry = manifest(fmt)
    state = random_state(fmt) if state is None else state
    path = folder / ("flownet.pkl" if entry["arch"] == "RIFE" else f"{fmt}.pth")
    torch.save({"params": state} if entry["saved_as"] == "params" else state, path)
    return path
