"""Generator exports and loading any generator checkpoint for evaluation, inference and `init_from`.

Export (`save_export`): `name.safetensors` (the generator state dict with plain key names, so an RRDBNet
export is a BasicSR/ESRGAN state dict that spandrel and other tools load) and `name.yaml`, which says how to
rebuild the network:

    generator: {_target_: restoregan.gans.rrdbnet.RRDBNet, num_feat: 64, ..., scale: 4}
    task: {_target_: restoregan.tasks.sr.SuperResolutionTask, scale: 4}
    scale: 4
    format_version: 2

The same description is also stored in the safetensors metadata, so the weights file alone suffices.

`load_generator(path)` accepts
1. an export: `name.safetensors` or `name.yaml`;
2. a Lightning `.ckpt` written by train.py (EMA generator preferred);
3. a community model file spandrel recognises (`.pth`, `.pt`, `.safetensors`). ESRGAN-family x4/x2/x1 state
   dicts (BasicSR key names, or the 2018 `model.N` layout, optionally wrapped in `params_ema`) are loaded
   into our RRDBNet with sizes inferred from the weights; anything else (x8, ESRGAN+, SwinIR, ...) runs
   through spandrel's architecture detection; a RIFE v4 `flownet.pkl` and DDColor (spandrel-extra-arches) are
   read by `restoregan.gans.community`;
4. an ONNX file (`.onnx`, ours from export.py or someone else's), run by onnxruntime (`restoregan.gans.onnx_model`).
An export may carry a model card (`card:`, restoregan.gans.card); exports without one load as before.
Errors are `CheckpointError` (a ValueError) with a one-line message starting with the path.

Model files are data, never code. Every pickle-based file (`.pth`, `.pt`, `.ckpt`, `.bin`) is read with
`torch.load(weights_only=True)`, and a file that holds Python objects besides tensors and plain containers
(a pickled callable, a TorchScript archive) is refused, never unpickled. A description (the export yaml, the
`restoregan` safetensors metadata, the `restoregan` dict of a `.ckpt`) may only name a network class defined
in a `restoregan.gans.*` module, with plain-data keyword arguments (numbers, strings, booleans, lists), and
the class is called directly: no Hydra `instantiate`, so no nested `_target_`, `_partial_`, `_args_` or
interpolation is ever evaluated (see `build_generator`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from restoregan.atomic import Staged
from restoregan.gans.sizes import net_multiple

FORMAT_VERSION = 2  # 2: `task` is the task's config {_target_, **kwargs}; 1: a word (`sr`), settings beside it
RRDBNET_TARGET = "restoregan.gans.rrdbnet.RRDBNet"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message starts with its path."""


@dataclass
class LoadedGenerator:
    """A network read from a file and what the file says about it; `restoregan.models.load_model` turns it into
    the descriptor the rest of the project uses (the task rebuilt)."""

    net: nn.Module  # in eval mode, on the requested device
    scale: int
    task: Any  # the file's task description: {_target_, **kwargs} (format 2), a word (format 1), None (community)
    arch: dict | None  # {"_target_": ..., **kwargs} when we know how to rebuild it, None for spandrel models
    source: str  # human-readable origin, e.g. "restoregan export" or "spandrel ESRGAN (64nf, 23nb)"
    meta: dict = field(default_factory=dict)  # further description keys: run name, iterations (format 1: settings)
    purpose: str | None = None  # community models: "SR", "Restoration", ... (spandrel's word)
    channels: tuple[int | None, int | None] = (None, None)  # (input, output) channels, None when not declared
    pad_multiple: int = 1  # input sides must divide this
    described_in: Path | None = None  # the file holding the description (the yaml beside an export's weights)


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

    `arch` is the generator's `_target_` config; `meta` holds at least `task` (the task's `config()`:
    `{_target_, **kwargs}`) and `scale` (extra keys, e.g. run name and iterations, are kept in the yaml).
    """
    base = _export_base(path)
    if "_target_" not in arch:
        raise ValueError(f"{base}: arch must be a `_target_` config, got keys {sorted(arch)}")
    missing = {"task", "scale"} - set(meta)
    if missing:
        raise ValueError(f"{base}: meta lacks {sorted(missing)}")
    if not isinstance(meta["task"], Mapping) or "_target_" not in meta["task"]:
        raise ValueError(f"{base}: meta's task must be a task config ({{_target_: ..., **kwargs}}), not {meta['task']!r}")
    description = {
        "generator": dict(arch),
        "task": dict(meta["task"]),
        "scale": int(meta["scale"]),
        "format_version": FORMAT_VERSION,
        **{k: v for k, v in meta.items() if k not in ("task", "scale")},
    }
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, config = Path(f"{base}.safetensors"), Path(f"{base}.yaml")
    state = plain_state_dict(net)
    metadata = {"format": "pt", "restoregan": json.dumps(description)}
    with Staged(durable=True) as staged:  # both files written aside, renamed together: never new weights with an old yaml
        staged.write(weights, lambda tmp: save_file(state, tmp, metadata=metadata))
        staged.write(config, lambda tmp: Path(tmp).write_text(yaml.safe_dump(description, sort_keys=False)))
    return weights


# --- loading --------------------------------------------------------------------------------------
def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from an export, a train.py checkpoint or a community model file (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: " + ("a folder, not a model file" if path.is_dir() else "checkpoint not found"))
    if path.suffix == ".yaml":
        loaded = _load_export_yaml(path)
    elif path.suffix == ".safetensors":
        loaded = _load_safetensors(path)
    elif path.suffix.lower() == ".onnx":  # run by onnxruntime (restoregan.gans.onnx_model)
        from restoregan.gans.onnx_model import load_onnx

        loaded = load_onnx(path, device)
    else:
        loaded = _load_pickle(path)
    check_finite(path, loaded.net)
    loaded.net.to(device).eval()
    return loaded


def check_finite(path: Path, net: nn.Module) -> None:
    """Refuse a network with NaN or infinite weights (a diverged run's export, a damaged file): it would write
    black or garbage images without a word."""
    for key, value in net.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            what = "NaN" if bool(value.isnan().any()) else "infinite"
            raise CheckpointError(f"{path}: weight {key} holds {bad} {what} values of {value.numel()}; the model is "
                                  "broken (a diverged training run or a damaged file)")


MAX_DESCRIPTION_BYTES = 64 * 1024  # real ones hold a few hundred bytes; PyYAML reads only ~60 KB/s


def load_description(path: Path) -> Any:
    """An export yaml as plain data (`yaml.safe_load`: no tags, no Python objects), refused in one line when it
    is too large to be one (a multi-megabyte yaml would take minutes to parse) or not YAML."""
    size = path.stat().st_size
    if size > MAX_DESCRIPTION_BYTES:
        raise CheckpointError(f"{path}: not an export description ({size} bytes; a description holds at most "
                              f"{MAX_DESCRIPTION_BYTES})")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: not an export description (invalid YAML: {first_line(err)})") from None


def _read_description(path: Path) -> dict:
    description = load_description(path)
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
            description = _read_description(sibling)
        except CheckpointError as err:
            if not str(err).startswith(f"{sibling}: not an export description"):
                raise
        else:  # a refused description names the yaml, weights that do not fit name this file
            return _from_description(sibling, description, state, "restoregan export", weights_path=path)
    if "restoregan" in metadata:  # an export whose yaml was not copied along
        try:
            description = json.loads(metadata["restoregan"])
        except (ValueError, RecursionError) as err:
            raise CheckpointError(
                f"{path}: its `restoregan` metadata is not a valid export description (invalid JSON: "
                f"{first_line(err)})"
            ) from None
        return _from_description(path, description, state, "restoregan export")
    return _from_state_dict(path, state)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a checkpoint (unreadable safetensors: {first_line(err)})") from None


def torch_load_weights_only(path: str | Path, mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` on CPU, its refusals turned into one-line `CheckpointError`s: a file
    holding Python objects besides tensors and plain containers (a pickled callable, a TorchScript archive) is
    never unpickled, and torch's advice to load it unsafely is not passed on. For every loader of a user's
    file (train.py's resume too)."""
    path = Path(path)
    with open(path, "rb") as f:  # OSError names the path
        head = f.read(4)
    # torch.save writes a zip archive (PK..) or, before torch 1.6, a pickle of protocol 2+ (0x80): anything else
    # (a text file, an image, random bytes) is no checkpoint, and must not be reported as "holding objects"
    if not head:
        raise CheckpointError(f"{path}: not a checkpoint (the file is empty)")
    if head != b"PK\x03\x04" and head[0] != 0x80:
        raise CheckpointError(f"{path}: not a checkpoint (not a file written by torch.save)")
    try:
        with warnings.catch_warnings():  # torch announces a TorchScript archive before refusing it (below)
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as err:  # a legacy (non-zip) torch file cannot be memory-mapped: read it whole
                if not (mmap and "mmap can only be used" in str(err)):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights_only" not in text and "Weights only" not in text:  # not a pickle at all
            raise CheckpointError(f"{path}: not a checkpoint (torch.load cannot read it: {first_line(err)})") from None
        found = re.search(r"GLOBAL (\S+)", text) or re.search(r"global[: ]+`?([\w.]+)", text, re.IGNORECASE)
        what = f" (it refers to {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: holds Python objects besides weights{what}, so it is not loaded for safety; "
            "use a file of plain tensors (.safetensors, or a .pth state dict)"
        ) from None
    except OSError:
        raise  # unreadable: the OSError names the path
    except Exception as err:  # zip/EOF/format errors: not a torch file at all
        if "TorchScript" in str(err):
            raise CheckpointError(
                f"{path}: a TorchScript archive (it holds code, not only weights), so it is not loaded for "
                "safety; use a file of plain tensors (.safetensors, or a .pth state dict)"
            ) from None
        reason = f"{type(err).__name__}: {first_line(err)}"
        raise CheckpointError(f"{path}: not a checkpoint (torch.load cannot read it: {reason})") from None


def _load_pickle(path: Path) -> LoadedGenerator:
    """`.ckpt` / `.pth` / `.pt` / `.bin`: always weights-only. Real train.py checkpoints load that way (their
    hyperparameters are plain data); a file that needs more is refused, whatever its suffix."""
    obj = torch_load_weights_only(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, not a state dict)")
    if "restoregan" in obj and "state_dict" in obj:
        return _from_lightning(path, obj)
    return _from_state_dict(path, obj)


def _from_lightning(path: Path, ckpt: Mapping[str, Any]) -> LoadedGenerator:
    """train.py checkpoint: generator weights under `net_g_ema.` (preferred) or `net_g.`."""
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: Lightning checkpoint whose state_dict is a {type(state).__name__}")
    for prefix, which in (("net_g_ema.", "EMA generator"), ("net_g.", "generator")):
        sub = {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
        if sub:
            break
    else:
        raise CheckpointError(f"{path}: Lightning checkpoint without generator weights (no net_g.* keys)")
    sub = {k.replace("_orig_mod.", ""): v for k, v in sub.items()}
    return _from_description(path, ckpt["restoregan"], sub, f"Lightning checkpoint ({which})")


def _from_description(
    path: Path, description: Any, state: Mapping[str, Any], source: str, weights_path: Path | None = None
) -> LoadedGenerator:
    """Build the generator the description in `path` names (`build_generator`) and load `state` (from
    `weights_path`, by default the same file) into it."""
    if not isinstance(description, Mapping):
        raise CheckpointError(f"{path}: its description is a {type(description).__name__}, not a mapping")
    for key in description:
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: description key {key!r} is not a string")
    arch = description.get("generator")
    if not isinstance(arch, Mapping) or "_target_" not in arch:
        raise CheckpointError(f"{path}: its description names no generator `_target_`")
    task = description.get("task")
    if task is not None and not isinstance(task, (str, Mapping)):
        raise CheckpointError(f"{path}: task: {_short(repr(task))} is not a task description")
    scale = description.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
        raise CheckpointError(f"{path}: scale: {_short(repr(scale))} is not a positive integer")
    meta = {k: plain_value(path, k, v) for k, v in description.items()
            if k not in ("generator", "task", "scale", "format_version", "card")}
    if "card" in description:  # the model card (restoregan.gans.card): flat mappings of plain values
        from restoregan.gans.card import check_card

        try:
            meta["card"] = check_card(path, description["card"])
        except ValueError as err:
            raise CheckpointError(str(err)) from None
    net, arch = build_generator(path, arch, state, weights_path)
    built = getattr(net, "scale", None)
    if scale is not None and isinstance(built, int) and scale != built:  # the net decides output sizes
        raise CheckpointError(f"{path}: scale: {scale}, but the {arch['_target_']} it describes scales x{built}")
    scale = scale if scale is not None else int(getattr(net, "scale", 1))
    params = inspect.signature(type(net)).parameters
    channels = tuple(arch.get(k, params[k].default if k in params else None) for k in ("num_in_ch", "num_out_ch"))
    channels = tuple(c if isinstance(c, int) and not isinstance(c, bool) else None for c in channels)
    return LoadedGenerator(net, scale, task, arch, f"{source}: {arch['_target_']}", meta, None, channels,
                           net_multiple(net), described_in=path)


# --- descriptions: only our own generator classes, from plain data --------------------------------
GENERATOR_PACKAGE = "restoregan.gans"
_TARGET = re.compile(r"restoregan\.gans\.([A-Za-z]\w*)\.([A-Za-z]\w*)")
PLAIN_DATA = "only numbers, strings, booleans and lists"
_MAX_ITEMS = 1000  # list entries in one description; YAML aliases can nest lists into exponential sizes
_MAX_DEPTH = 4


def generator_class(path: Path, target: Any) -> type[nn.Module]:
    """The class `target` names, if it is a network class defined in a `restoregan.gans.<module>`.

    The string is checked before anything is imported, so `builtins.open`, `pathlib.Path` or
    `torch.load` never get near an import; `restoregan.gans.x.torch.load`-style attribute paths fail the
    pattern, and a name a module merely imports (`restoregan.gans.checkpoint.Path`) fails the
    `__module__` check."""
    match = _TARGET.fullmatch(target) if isinstance(target, str) else None
    if match is None:
        raise CheckpointError(
            f"{path}: generator._target_: {_short(target)} is not allowed; an export may only name a generator "
            f"class of this project ({GENERATOR_PACKAGE}.<module>.<Class>)"
        )
    module_name = f"{GENERATOR_PACKAGE}.{match.group(1)}"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise CheckpointError(f"{path}: unknown generator architecture {target} (no module {module_name})") from None
    cls = vars(module).get(match.group(2))
    if not (isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == module_name):
        raise CheckpointError(
            f"{path}: unknown generator architecture {target} ({module_name} defines no network class "
            f"{match.group(2)})"
        )
    return cls


def plain_value(path: Path, where: str, value: Any, _budget: list[int] | None = None, _depth: int = 0) -> Any:
    """`value` if it is plain data (None, bool, int, float, str, lists of those), else a one-line refusal
    naming the file and the key. Tuples (a weights-only `.ckpt` may hold them) come back as lists."""
    budget = _budget if _budget is not None else [_MAX_ITEMS]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        budget[0] -= len(value)
        if budget[0] < 0 or _depth >= _MAX_DEPTH:
            raise CheckpointError(f"{path}: {where}: a list too large or too deeply nested for a model description")
        return [plain_value(path, f"{where}[{i}]", v, budget, _depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        what = f"a nested object (_target_: {_short(value['_target_'])})" if "_target_" in value else "a mapping"
    else:
        what = f"a {type(value).__name__}"
    raise CheckpointError(f"{path}: {where}: {what} is not allowed; {PLAIN_DATA}")


def build_generator(
    path: Path, arch: Mapping[str, Any], state: Mapping[str, Any], weights_path: Path | None = None
) -> tuple[nn.Module, dict]:
    """The one way a description becomes a network: `cls(**kwargs)` for an allowed class (`generator_class`)
    and plain-data kwargs (`plain_value`), with `state` loaded strictly. Returns the net and the validated
    `{_target_, **kwargs}`.

    Hydra directives (`_partial_`, `_args_`, `_recursive_`, `_convert_`) are refused, never interpreted. The
    network is first built on the meta device (no memory) and checked against the file's tensors, so a
    description asking for a huge network fails on shapes instead of allocating it."""
    cls = generator_class(path, arch.get("_target_"))
    budget, kwargs = [_MAX_ITEMS], {}
    for key, value in arch.items():
        if key == "_target_":
            continue
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise CheckpointError(
                f"{path}: generator.{key}: not allowed; a description holds the class's keyword arguments "
                f"({PLAIN_DATA}), no Hydra directives"
            )
        kwargs[key] = plain_value(path, f"generator.{key}", value, budget)
    target = arch["_target_"]
    name = f"{target}({_kwargs_str(kwargs)})"
    build_kwargs = dict(kwargs)
    if "pretrained" in inspect.signature(cls).parameters:
        build_kwargs["pretrained"] = False  # every weight comes from the file: no ImageNet backbone to fetch
    tensors = [v for v in state.values() if isinstance(v, Tensor)]
    try:
        with torch.device("meta"), _registrations_at_most(len(tensors)):
            shaped = cls(**build_kwargs)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot build {name}: {first_line(err)}") from None
    _check_weights(weights_path or path, shaped, state, name)
    try:
        net = cls(**build_kwargs)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot build {name}: {first_line(err)}") from None
    net.load_state_dict(state)
    return net, {"_target_": target, **kwargs}


class _TooLarge(Exception):
    pass


@contextmanager
def _registrations_at_most(tensors: int) -> Iterator[None]:
    """Stop a constructor once it registered far more parameters, buffers and submodules than `tensors` (the
    file's) could fill: a description with num_block=10**9 would otherwise run for hours."""
    from torch.nn.modules import module as torch_module

    count, limit = 0, 8 * tensors + 256  # generous: spectral norm re-registers, activations hold no tensors

    def hook(*args: Any) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise _TooLarge(f"the network it describes is far larger than the {tensors} weight tensors in the file")

    handles = [torch_module.register_module_parameter_registration_hook(hook),
               torch_module.register_module_buffer_registration_hook(hook),
               torch_module.register_module_module_registration_hook(hook)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_weights(path: Path, net: nn.Module, state: Mapping[str, Any], arch_name: str) -> None:
    """Strict key and shape check with a one-line summary instead of PyTorch's per-key dump."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state
              and (not isinstance(state[k], Tensor) or tuple(state[k].shape) != tuple(expected[k].shape))]
    # float weights stored as integers or booleans would be cast silently into a different, useless network
    kinds = [k for k in expected if k in state and k not in shapes and expected[k].is_floating_point()
             and not (state[k].is_floating_point() or state[k].is_complex())]
    if kinds:
        raise CheckpointError(f"{path}: {len(kinds)} weights are not floating point (e.g. {kinds[0]}: "
                              f"{state[kinds[0]].dtype}); not weights {arch_name} can use")
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {_short(unexpected[0])})")
        if shapes:
            k = shapes[0]
            held = tuple(state[k].shape) if isinstance(state[k], Tensor) else f"a {type(state[k]).__name__}"
            parts.append(
                f"{len(shapes)} shape mismatches (e.g. {k}: {held} in the file, "
                f"{tuple(expected[k].shape)} in the model)"
            )
        raise CheckpointError(
            f"{path}: weights do not fit {arch_name} named in its config; a checkpoint of another "
            f"architecture or size? {'; '.join(parts)}"
        )


def _load_weights(path: Path, net: nn.Module, state: Mapping[str, Tensor], arch_name: str) -> None:
    """load_state_dict(strict) with a one-line summary instead of PyTorch's per-key dump."""
    _check_weights(path, net, state, arch_name)
    net.load_state_dict(state)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kwargs_str(arch: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in arch.items() if k != "_target_")


def first_line(err: BaseException) -> str:
    """An error's first line; for torch's load_state_dict error (a header, then one line per problem) the header
    and the first problem, shortened: the first mismatched key with both shapes, or the first missing or
    unexpected key and how many there are."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if len(lines) == 1 or not lines[0].startswith("Error(s) in loading state_dict"):
        return lines[0]
    problem = lines[1]
    size = re.match(r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                    r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)", problem)
    keys = re.match(r"(Missing|Unexpected) key\(s\) in state_dict: (.*)", problem)
    if size:
        problem = f"shape mismatch for {_short(size[1])}: {size[2]} in the file, {size[3]} in the model"
    elif keys:
        names = re.findall(r'"([^"]*)"', keys[2])
        problem = f"{len(names)} {keys[1].lower()} keys (e.g. {_short(names[0] if names else keys[2])})"
    else:
        problem = _short(problem, 200)
    return f"{lines[0]} {problem}" + ("; and more" if len(lines) > 2 else "")


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
    from restoregan.gans.community import from_state_dict as community_model

    found = community_model(path, state)  # RIFE flownet.pkl (restoregan.gans.community)
    if found is not None:
        return found
    state = from_old_esrgan_keys(state) or state
    kwargs = infer_rrdbnet_kwargs(state)
    if kwargs is not None:
        from restoregan.gans.rrdbnet import RRDBNet

        net = RRDBNet(**kwargs)
        try:
            _load_weights(path, net, state, f"RRDBNet({_kwargs_str(kwargs)})")
            arch = {"_target_": RRDBNET_TARGET, **kwargs}
            source = f"ESRGAN-family state dict: RRDBNet({_kwargs_str(kwargs)})"
            scale = kwargs["scale"]
            return LoadedGenerator(net, scale, None, arch, source, {}, "SR" if scale > 1 else "Restoration",
                                   (kwargs.get("num_in_ch", 3), kwargs.get("num_out_ch", 3)), net_multiple(net))
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


def _from_spandrel(path: Path, obj: Mapping[str, Any]) -> LoadedGenerator:
    import spandrel

    from restoregan.gans.community import adapt_spandrel, missing_extra, spandrel_registry

    try:
        descriptor = spandrel.ModelLoader("cpu", registry=spandrel_registry()).load_from_state_dict(dict(obj))
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{path}: unknown architecture (not a restoregan export or checkpoint, and spandrel does not "
            f"recognise its weights){missing_extra(obj)}"
        ) from None
    except Exception as err:  # recognised but malformed weights
        message = f"{type(err).__name__}: {first_line(err)}"
        raise CheckpointError(f"{path}: spandrel recognised but could not load it ({message})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{path}: {descriptor.architecture.name} is not a single-image model")
    adapted = adapt_spandrel(descriptor)  # DDColor: a colorizer, not an image-to-image model
    if adapted is not None:
        return adapted
    tags = ", ".join(descriptor.tags)
    req = descriptor.size_requirements
    return LoadedGenerator(
        SpandrelGenerator(descriptor),
        int(descriptor.scale),
        None,
        None,
        f"spandrel {descriptor.architecture.name}" + (f" ({tags})" if tags else ""),
        {},
        str(descriptor.purpose),
        (int(descriptor.input_channels), int(descriptor.output_channels)),
        max(1, int(req.multiple_of)),
    )
