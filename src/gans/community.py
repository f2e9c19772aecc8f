"""Community model files that spandrel alone does not give us in a form a stage can run: RIFE v4 `flownet.pkl`
(frame interpolation, loaded into `restoregan.gans.rife`) and DDColor (colorization, through the optional
`spandrel-extra-arches` package). `restoregan.gans.checkpoint` asks here first (`from_state_dict`) and builds
its spandrel loader from `spandrel_registry()`; everything else spandrel detects runs as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from restoregan.data.color import chroma
from restoregan.gans.checkpoint import CheckpointError, LoadedGenerator, _check_weights, _short

RIFE_PURPOSE = "FrameInterpolation"
COLORIZATION_PURPOSE = "Colorization"
_RIFE_BLOCK = re.compile(r"block(\d+)\.")
# keys of Practical-RIFE training modules that inference never uses (the distillation teacher, a time predictor)
_RIFE_TRAINING_ONLY = ("teacher.", "caltime.")
_SUPPORTED = "only the layout of Practical-RIFE v4.5 and v4.6 is supported"
# what that layout allows, checked before building: v4.5's last layer has 4 x 5 channels, v4.6's 4 x 6; the
# published files have 4 blocks of widths 192..64 and 8 residual convs each, these bounds leave room around them
_RIFE_OUTPUTS = (5, 6)
_RIFE_WIDTHS = (16, 512)
_RIFE_MAX_RES = 16
_RIFE_MAX_BLOCKS = 8


# --- RIFE -----------------------------------------------------------------------------------------------
def rife_state(state: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The IFNet weights of a Practical-RIFE `flownet.pkl` (its `module.` prefixes, from DistributedDataParallel,
    removed; training-only modules dropped), or None when the file is no RIFE flownet."""
    keys = [k for k in state if isinstance(k, str)]
    if len(keys) != len(state) or not keys:
        return None
    prefix = "module." if all(k.startswith("module.") for k in keys) else ""
    plain = {k[len(prefix):]: v for k, v in state.items()}
    if "block0.conv0.0.0.weight" not in plain or not any(k.startswith("block0.lastconv.") for k in plain):
        return None
    return {k: v for k, v in plain.items() if not k.startswith(_RIFE_TRAINING_ONLY)}


def rife_kwargs(path: Path, state: Mapping[str, Any]) -> dict[str, Any]:
    """`RifeInterpolator` arguments read from the weights' shapes; a RIFE layout it cannot hold is refused in one
    line: v4.0-v4.4 (plain convolutions, a bare transposed conv last: `lastconv.weight`) and v4.7 and later (a
    feature encoder, `encode.*`). Every size is bounded before any network is built (a file of empty tensors
    with huge shapes would otherwise allocate gigabytes), and the shapes are checked against them by `load_rife`."""
    if any(k.startswith("encode.") for k in state):
        raise CheckpointError(f"{path}: a RIFE flownet with a feature encoder (encode.*: Practical-RIFE v4.7 or "
                              f"later); {_SUPPORTED}")
    if "block0.lastconv.0.weight" not in state or "block0.convblock.0.beta" not in state:
        raise CheckpointError(f"{path}: a RIFE flownet of the v4.0-v4.4 layout (no residual `beta` scales, a bare "
                              f"last transposed conv); {_SUPPORTED}")
    blocks = sorted({int(m.group(1)) for k in state if (m := _RIFE_BLOCK.match(k))})
    if blocks != list(range(len(blocks))):
        raise CheckpointError(f"{path}: RIFE flownet with blocks {_short(str(blocks))}; expected block0, block1, ...")
    if len(blocks) > _RIFE_MAX_BLOCKS:
        raise CheckpointError(f"{path}: RIFE flownet with {len(blocks)} blocks (at most {_RIFE_MAX_BLOCKS}); "
                              f"{_SUPPORTED}")
    widths, res = [], set()
    for i in blocks:
        weight = state.get(f"block{i}.conv0.1.0.weight")
        if not isinstance(weight, Tensor) or weight.dim() != 4:
            raise CheckpointError(f"{path}: RIFE flownet without block{i}.conv0.1.0.weight")
        widths.append(int(weight.shape[0]))
        res.add(len({k.split(".")[2] for k in state if k.startswith(f"block{i}.convblock.")}))
    last = state["block0.lastconv.0.weight"]
    if len(res) != 1 or not isinstance(last, Tensor) or last.dim() != 4:
        raise CheckpointError(f"{path}: a RIFE flownet of a layout this version does not know")
    outputs, num_res = int(last.shape[1]) // 4, res.pop()
    low, high = _RIFE_WIDTHS
    if (last.shape[1] % 4 or outputs not in _RIFE_OUTPUTS or not 1 <= num_res <= _RIFE_MAX_RES
            or not all(low <= c <= high and c % 2 == 0 for c in widths)):
        raise CheckpointError(
            f"{path}: a RIFE flownet of sizes this version does not run (widths {_short(str(widths))}, "
            f"{num_res} residual convs, {int(last.shape[1])} last-layer channels; expected even widths "
            f"{low}..{high}, 1..{_RIFE_MAX_RES} residual convs, {' or '.join(str(4 * o) for o in _RIFE_OUTPUTS)} "
            f"channels); {_SUPPORTED}")
    return {"widths": widths, "num_res": num_res, "outputs": outputs}


def load_rife(path: Path, state: Mapping[str, Tensor]) -> Any:
    """A `LoadedGenerator` (purpose "FrameInterpolation") for a RIFE flownet's weights (`rife_state`). The
    network is first built on the meta device (no memory) and every tensor's shape checked against it, then
    built for real."""
    from restoregan.gans.rife import RifeInterpolator

    kwargs = rife_kwargs(path, state)
    name = f"RIFE v4 IFNet (widths {'/'.join(map(str, kwargs['widths']))})"
    weights = {f"flownet.{k}": v for k, v in state.items()}
    with torch.device("meta"):
        shaped = RifeInterpolator(**kwargs)
    _check_weights(path, shaped, weights, name)
    net = RifeInterpolator(**kwargs)
    net.load_state_dict(weights)
    return LoadedGenerator(net, 1, None, None, f"{name}, Practical-RIFE flownet", {}, RIFE_PURPOSE, (3, 3), 1)


def from_state_dict(path: Path, state: Mapping[str, Any]) -> Any:
    """The LoadedGenerator of a community format read here (RIFE), or None to let the other loaders try."""
    rife = rife_state(state)
    return load_rife(path, rife) if rife is not None else None


# --- DDColor (spandrel-extra-arches) ------------------------------------------------------------------------
def spandrel_registry() -> Any:
    """spandrel's registry, with DDColor added when the optional `spandrel-extra-arches` is installed (only
    DDColor: that package's other architectures carry non-commercial licences and have no stage here). A copy:
    spandrel's global registry is left as it is."""
    from spandrel import MAIN_REGISTRY

    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:
        return MAIN_REGISTRY
    ddcolor = EXTRA_REGISTRY.get("DDColor")
    if ddcolor is None or "DDColor" in MAIN_REGISTRY:
        return MAIN_REGISTRY
    registry = MAIN_REGISTRY.copy()
    registry.add(ddcolor)
    return registry


def missing_extra(state: Mapping[str, Any]) -> str:
    """What to add to "unknown architecture" for a DDColor file read without the optional extra."""
    if "refine_net.0.0.weight_orig" in state and "encoder.arch.norm.weight" in state:
        if "DDColor" not in spandrel_registry():
            return "; it looks like DDColor: install the optional extra `ddcolor` (spandrel-extra-arches)"
    return ""


class SpandrelColorizer(nn.Module):
    """A spandrel colorization model (DDColor) behind our colorizers' interface: luminance (b, 1, H, W) ->
    scaled chroma (b, 2, H, W) in YUV, so the colorize task puts that chroma on the input's own luminance, as
    it does with ours. DDColor's own call renders at its input size and returns RGB; only its chroma is kept.
    The channels are declared like our generators' (ColorizationTask.check_network reads them)."""

    def __init__(self, descriptor: Any, num_in_ch: int = 1, num_out_ch: int = 2) -> None:
        super().__init__()
        self.model = descriptor.model  # registered, so .to(device) / .eval() reach its weights
        self.descriptor = descriptor
        self.space = "yuv"

    def forward(self, lum: Tensor) -> Tensor:
        # spandrel's DDColor call takes one grey sRGB image (1, 1, H, W); grey RGB = luma in BT.601 YUV
        rgb = torch.cat([self.descriptor(item[None].clamp(0, 1)) for item in lum])
        return chroma(rgb.to(lum.dtype), self.space)


def adapt_spandrel(descriptor: Any) -> Any:
    """A LoadedGenerator for spandrel models that need more than `SpandrelGenerator` (DDColor), else None."""
    if str(descriptor.architecture.id) != "DDColor":
        return None
    tags = ", ".join(descriptor.tags)
    return LoadedGenerator(SpandrelColorizer(descriptor), 1, None, None, f"spandrel DDColor ({tags})", {},
                           COLORIZATION_PURPOSE, (1, 2), 1)
