"""Generator exports and loading any generator checkpoint for evaluation, inference and `init_from`.

Export (`save_export`): `name.safetensors` (the generator state dict with plain key names, so an RRDBNet
export is a BasicSR/ESRGAN state dict that spandrel and other tools load) and `name.yaml`, which says how to
rebuild the network:

    generator: {_target_: restoregan.gans.rrdbnet.RRDBNet, num_feat: 64, ..., scale: 4}
    task: sr
    scale: 4
    format_version: 1

The same description is also stored in the safetensors metadata, so the weights file alone suffices.

`load_generator(path)` accepts
1. an export: `name.safetensors` or `name.yaml`;
2. a Lightning `.ckpt` written by train.py (EMA generator preferred);
3. a community model file spandrel recognises (`.pth`, `.pt`, `.safetensors`). ESRGAN-family x4/x2/x1 state
   dicts (BasicSR key names, or the 2018 `model.N` layout, optionally wrapped in `params_ema`) are loaded
   into our RRDBNet with sizes inferred from the weights; anything else (x8, ESRGAN+, SwinIR, ...) runs
   through spandrel. `.pth` files are unpickled weights-only; `.ckpt` files are trusted (Lightning's).
Errors are `CheckpointError` (a ValueError) with a one-line message starting with the path.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from restoregan.atomic import atomic_write

FORMAT_VERSION = 1
RRDBNET_TARGET = "restoregan.gans.rrdbnet.RRDBNet"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message starts with its path."""


@dataclass
class LoadedGenerator:
    net: nn.Module  # in eval mode, on the requested device
    scale: int
    task: str
    arch: dict | None  # {"_target_": ..., **kwargs} when we know how to rebuild it, None for spandrel models
    source: str  # human-readable origin, e.g. "restoregan export" or "spandrel ESRGAN (64nf, 23nb)"
    meta: dict = field(default_factory=dict)  # the task's export_meta() (e.g. colour space), run name, iterations


# --- export ---------------------------------------------------------------------------------------
def _export_base(path: str | Path) -> Path:
    """`run/export/generator`, also accepted with a `.safetensors` / `.yaml` suffix."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".yaml") else path


def plain_state_dict(net: nn.Module) -> dict[str, Tensor]:
    """CPU, contiguous, without the `_orig_mod.` that torch.compile adds to every key."""
    return {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def save_export(path: str | Path, net: nn.Module, arch: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write `path.safetensors` + `path.yaml` atomically; returns the `.safetensors` path.

    `arch` is the generator's `_target_` config; `meta` holds at least `task` and `scale` (extra keys, e.g.
    run name and iterations, are kept in the yaml).
    """
    base = _export_base(path)
    if "_target_" not in arch:
        raise ValueError(f"{base}: arch must be a `_target_` config, got keys {sorted(arch)}")
    missing = {"task", "scale"} - set(meta)
    if missing:
        raise ValueError(f"{base}: meta lacks {sorted(missing)}")
    description = {
        "generator": dict(arch),
        "task": meta["task"],
        "scale": int(meta["scale"]),
        "format_version": FORMAT_VERSION,
        **{k: v for k, v in meta.items() if k not in ("task", "scale")},
    }
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, config = Path(f"{base}.safetensors"), Path(f"{base}.yaml")
    state = plain_state_dict(net)
    metadata = {"format": "pt", "restoregan": json.dumps(description)}
    atomic_write(weights, lambda tmp: save_file(state, tmp, metadata=metadata))
    atomic_write(config, lambda tmp: Path(tmp).write_text(yaml.safe_dump(description, sort_keys=False)))
    return weights


# --- loading --------------------------------------------------------------------------------------
def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from an export, a train.py checkpoint or a community model file (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.suffix == ".yaml":
        loaded = _load_export_yaml(path)
    elif path.suffix == ".safetensors":
        loaded = _load_safetensors(path)
    else:
        loaded = _load_pickle(path)
    loaded.net.to(device).eval()
    return loaded


def _read_description(path: Path) -> dict:
    try:
        description = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not an export description (invalid YAML: {_first_line(err)})") from None
    if not isinstance(description, dict) or "generator" not in description:
        raise CheckpointError(f"{path}: not an export description (no `generator` key)")
    return description


def _load_export_yaml(path: Path) -> LoadedGenerator:
    description = _read_description(path)
    weights = path.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"{path}: its weights {weights.name} are missing beside it")
    return _from_description(path, description, _read_safetensors(weights)[0], "restoregan export")


def _load_safetensors(path: Path) -> LoadedGenerator:
    state, metadata = _read_safetensors(path)
    sibling = path.with_suffix(".yaml")
    if sibling.is_file():  # our export; a yaml without a `generator` key belongs to something else
        try:
            return _from_description(path, _read_description(sibling), state, "restoregan export")
        except CheckpointError as err:
            if not str(err).startswith(f"{sibling}: not an export description"):
                raise
    if "restoregan" in metadata:  # an export whose yaml was not copied along
        return _from_description(path, json.loads(metadata["restoregan"]), state, "restoregan export")
    return _from_state_dict(path, state)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a checkpoint (unreadable safetensors: {_first_line(err)})") from None


def _load_pickle(path: Path) -> LoadedGenerator:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err):  # not a pickle at all
            raise CheckpointError(f"{path}: not a checkpoint (torch.load cannot read it: {_first_line(err)})") from None
        if path.suffix != ".ckpt":
            # Python objects besides tensors: spandrel's restricted unpickler admits a few more (numpy, ...)
            return _from_spandrel_file(path)
        # Lightning checkpoints pickle hyperparameters (e.g. optimizer partials) that the weights-only
        # unpickler refuses; a .ckpt is trusted like any Lightning checkpoint you resume from.
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # zip/EOF/format errors: not a torch file at all
        reason = f"{type(err).__name__}: {_first_line(err)}"
        raise CheckpointError(f"{path}: not a checkpoint (torch.load cannot read it: {reason})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, not a state dict)")
    if "restoregan" in obj and "state_dict" in obj:
        return _from_lightning(path, obj)
    return _from_state_dict(path, obj)


def _from_lightning(path: Path, ckpt: Mapping[str, Any]) -> LoadedGenerator:
    """train.py checkpoint: generator weights under `net_g_ema.` (preferred) or `net_g.`."""
    state = ckpt["state_dict"]
    for prefix, which in (("net_g_ema.", "EMA generator"), ("net_g.", "generator")):
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            break
    else:
        raise CheckpointError(f"{path}: Lightning checkpoint without generator weights (no net_g.* keys)")
    sub = {k.replace("_orig_mod.", ""): v for k, v in sub.items()}
    return _from_description(path, ckpt["restoregan"], sub, f"Lightning checkpoint ({which})")


def _from_description(
    path: Path, description: Mapping[str, Any], state: dict[str, Tensor], source: str
) -> LoadedGenerator:
    """Build the generator its `_target_` config names and load `state` into it."""
    from hydra.utils import get_class, instantiate  # hydra is heavy; only the loaders that need it pay for it

    arch = description.get("generator") if isinstance(description, Mapping) else None
    if not isinstance(arch, Mapping) or "_target_" not in arch:
        raise CheckpointError(f"{path}: its description names no generator `_target_`")
    arch = dict(arch)
    target = arch["_target_"]
    try:
        get_class(target)
    except Exception as err:
        raise CheckpointError(f"{path}: unknown generator architecture {target} ({_first_line(err)})") from None
    try:
        net = instantiate(arch)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot build {target}({_kwargs_str(arch)}): {_first_line(err)}") from None
    _load_weights(path, net, state, f"{target}({_kwargs_str(arch)})")
    scale = int(description.get("scale", getattr(net, "scale", 1)))
    meta = {k: v for k, v in description.items() if k not in ("generator", "task", "scale", "format_version")}
    return LoadedGenerator(net, scale, str(description.get("task", "sr")), arch, f"{source}: {target}", meta)


def _load_weights(path: Path, net: nn.Module, state: Mapping[str, Tensor], arch_name: str) -> None:
    """load_state_dict(strict) with a one-line summary instead of PyTorch's per-key dump."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} in the file, "
                f"{tuple(expected[k].shape)} in the model)"
            )
        raise CheckpointError(
            f"{path}: weights do not fit {arch_name} named in its config; a checkpoint of another "
            f"architecture or size? {'; '.join(parts)}"
        )
    net.load_state_dict(state)


def _kwargs_str(arch: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in arch.items() if k != "_target_")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- community model files -----------------------------------------------------------------------
def _unwrap(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """BasicSR / Real-ESRGAN releases wrap the weights in `params_ema` or `params`."""
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def infer_rrdbnet_kwargs(state: Mapping[str, Tensor]) -> dict[str, int] | None:
    """RRDBNet constructor arguments from a BasicSR-named ESRGAN state dict, or None if it is not one
    our RRDBNet can hold (old `model.N` key names, x8 or ESRGAN+ variants, other architectures)."""
    needed = ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_up1.weight",
              "conv_up2.weight", "conv_hr.weight", "conv_last.weight")
    if not all(k in state for k in needed) or "conv_up3.weight" in state:
        return None
    blocks = [int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))]
    out_ch, in_total = state["conv_last.weight"].shape[0], state["conv_first.weight"].shape[1]
    # x4 sees the image itself; x2 / x1 pixel-unshuffle it first (4x / 16x the channels)
    scale = {1: 4, 4: 2, 16: 1}.get(in_total // out_ch) if in_total % out_ch == 0 else None
    if scale is None:
        return None
    return {
        "num_in_ch": in_total // (4 // scale) ** 2,
        "num_out_ch": out_ch,
        "num_feat": state["conv_first.weight"].shape[0],
        "num_block": max(blocks) + 1,
        "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0],
        "scale": scale,
    }


# The 2018 ESRGAN release (and spandrel's RRDBNet) name the same x4 network as one nn.Sequential:
# model.0 first conv, model.1.sub.<i>.RDB<j>.conv<k>.0 the blocks, model.1.sub.<last> the trunk conv, then
# [upsample, conv, lrelu] twice (model.3, model.6), conv + lrelu (model.8) and the last conv (model.10).
_OLD_ESRGAN_X4 = [
    (r"model\.0\.", "conv_first."),
    (r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
    (r"model\.3\.", "conv_up1."),
    (r"model\.6\.", "conv_up2."),
    (r"model\.8\.", "conv_hr."),
    (r"model\.10\.", "conv_last."),
]


def from_old_esrgan_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
    """BasicSR names for an old-layout ESRGAN x4 state dict; None for other layouts (x8, ESRGAN+, ...)."""
    if "model.0.weight" not in state or "model.1.sub.0.RDB1.conv1.0.weight" not in state:
        return None
    num_block = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k)))
    rules = [*_OLD_ESRGAN_X4, (rf"model\.1\.sub\.{num_block}\.", "conv_body.")]
    new = {}
    for key, value in state.items():
        for pattern, repl in rules:
            if re.match(pattern, key):
                new[re.sub(pattern, repl, key, count=1)] = value
                break
        else:
            return None  # a layer this layout does not have
    return new


def _from_state_dict(path: Path, obj: Mapping[str, Any]) -> LoadedGenerator:
    state = _unwrap(obj)
    if not all(isinstance(v, Tensor) for v in state.values()):
        return _from_spandrel(path, obj)
    state = from_old_esrgan_keys(state) or state
    kwargs = infer_rrdbnet_kwargs(state)
    if kwargs is not None:
        from restoregan.gans.rrdbnet import RRDBNet

        net = RRDBNet(**kwargs)
        try:
            _load_weights(path, net, state, f"RRDBNet({_kwargs_str(kwargs)})")
            arch = {"_target_": RRDBNET_TARGET, **kwargs}
            source = f"ESRGAN-family state dict: RRDBNet({_kwargs_str(kwargs)})"
            return LoadedGenerator(net, kwargs["scale"], "sr", arch, source)
        except CheckpointError:
            pass  # RRDB-like names but a variant we do not cover: let spandrel try
    return _from_spandrel(path, obj)


class SpandrelGenerator(nn.Module):
    """A spandrel image-to-image model behind the `net(x)` / `.scale` interface of our generators.

    Calls go through spandrel's descriptor, which pads inputs to the model's size requirements and clamps
    the output to [0, 1].
    """

    def __init__(self, descriptor: Any) -> None:
        super().__init__()
        self.model = descriptor.model  # registered, so .to(device) / .eval() reach its weights
        self.descriptor = descriptor
        self.scale = int(descriptor.scale)

    def forward(self, x: Tensor) -> Tensor:  # (b, c, h, w) -> (b, c_out, h*scale, w*scale)
        return self.descriptor(x)


def _from_spandrel_file(path: Path) -> LoadedGenerator:
    import spandrel

    try:
        state = spandrel.ModelLoader("cpu").load_state_dict_from_file(path)
    except Exception as err:
        raise CheckpointError(
            f"{path}: not a checkpoint (it pickles Python objects besides weights, which are not loaded for "
            f"safety: {type(err).__name__}: {_first_line(err)})"
        ) from None
    return _from_spandrel(path, state)


def _from_spandrel(path: Path, obj: Mapping[str, Any]) -> LoadedGenerator:
    import spandrel

    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(dict(obj))
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{path}: unknown architecture (not a restoregan export or checkpoint, and spandrel does not "
            "recognise its weights)"
        ) from None
    except Exception as err:  # recognised but malformed weights
        message = f"{type(err).__name__}: {_first_line(err)}"
        raise CheckpointError(f"{path}: spandrel recognised but could not load it ({message})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{path}: {descriptor.architecture.name} is not a single-image model")
    tags = ", ".join(descriptor.tags)
    return LoadedGenerator(
        SpandrelGenerator(descriptor),
        int(descriptor.scale),
        "sr",
        None,
        f"spandrel {descriptor.architecture.name}" + (f" ({tags})" if tags else ""),
    )
