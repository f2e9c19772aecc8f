"""ONNX export of our generators, with dynamic batch, height and width, for tools outside this project (chaiNNer,
onnxruntime, TensorRT) and for infer.py / the film pipeline themselves (`restoregan.gans.onnx_model`).

The graph comes from torch.onnx's TorchScript-based exporter (`dynamo=False`) with `dynamic_axes`: in torch 2.14
the torch.export-based one (`dynamo=True`) fails on ColorizeUNet's self-attention (3-D scaled_dot_product_attention)
and on InterpolationNet's three inputs with shared dynamic sizes, and takes 5x longer on the others. Tracing records
Python branches on sizes as taken at the trace size, so `export_onnx` traces at 64x64 and `verify_onnx` checks the
file against PyTorch at another size; image networks are handed inputs padded to `pad_multiple` (as every caller
pads for PyTorch too), so a network's own "pad only when needed" branch never matters.

Inputs: `input` (b, c, h, w) for image networks; `frame0`, `frame1` (b, 3, h, w) and `t` (b,) for InterpolationNet.
Output: `output`. The file's metadata_props say what it is (all values strings; JSON where structured):

    restoregan.format        ONNX_FORMAT
    restoregan.task          the task's config {_target_, **kwargs}, as an export stores it
    restoregan.generator     the generator's {_target_, **kwargs} (what it was exported from; never rebuilt)
    restoregan.scale         output side / input side
    restoregan.pad_multiple  input sides must divide this (callers pad, then crop)
    restoregan.channels      [input channels, output channels]
    restoregan.card          the model card (restoregan.gans.card)
"""

from __future__ import annotations

import inspect
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from restoregan.atomic import atomic_write_bytes
from restoregan.gans.sizes import net_multiple
from restoregan.gans.temporal_restorer import takes_clips

ONNX_FORMAT = "1"
DEFAULT_OPSET = 17  # GridSample (interpolation's warps) needs 16; 17 is read by onnxruntime >= 1.11 and TensorRT 8.5+
TRACE_SIDE = 64
TOLERANCE = 1e-4  # fp32: max abs difference allowed between onnxruntime and PyTorch (times the output's peak
# magnitude when that exceeds 1: float error is relative, and an untrained network's outputs may be huge)
# Networks that pad their input themselves with a size-dependent choice (reflect or replicate: a Python branch the
# trace would freeze): the ONNX graph takes sides that are multiples of this, padded by the caller with the same
# rule (restoregan.gans.onnx_model.pad_to), so the network's own padding is empty whichever branch was traced.
SELF_PADDING = {"ColorizeUNet": 32}


def is_interpolator(net: nn.Module) -> bool:
    """A network called as net(frame0, frame1, t)."""
    params = [p for p in inspect.signature(net.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params) == 3


def input_names(net: nn.Module) -> list[str]:
    return ["frame0", "frame1", "t"] if is_interpolator(net) else ["input"]


def example_inputs(net: nn.Module, in_channels: int, h: int, w: int, seed: int = 0, batch: int = 2
                   ) -> tuple[Tensor, ...]:
    """Random inputs of side h x w for tracing and checking; a batch of 2 by default (a batch of 1 would let the
    trace take InterpolationNet's "one t for all" branch)."""
    g = torch.Generator().manual_seed(seed)
    if is_interpolator(net):
        return (torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g),
                torch.rand(batch, generator=g))
    return (torch.rand(batch, in_channels, h, w, generator=g),)


def network_channels(net: nn.Module, arch: Mapping[str, Any]) -> tuple[int, int]:
    """(input, output) channels: the description's, else the class's defaults, else the network's own example
    input and one forward pass (ColorizeUNet: luminance in, chroma out)."""
    params = inspect.signature(type(net)).parameters
    declared = [arch.get(k, params[k].default if k in params else None) for k in ("num_in_ch", "num_out_ch")]
    if all(isinstance(c, int) and not isinstance(c, bool) for c in declared):
        return declared[0], declared[1]
    own = getattr(net, "example_inputs", None)
    x = own()[0][:1, :, :TRACE_SIDE, :TRACE_SIDE] if own is not None else torch.rand(1, 3, TRACE_SIDE, TRACE_SIDE)
    with torch.no_grad():
        y = net(*example_inputs(net, x.shape[1], TRACE_SIDE, TRACE_SIDE))
    return int(x.shape[1]), int(y.shape[1])


def onnx_bytes(net: nn.Module, in_channels: int, opset: int = DEFAULT_OPSET) -> bytes:
    """The traced graph (dynamic batch, height, width), without metadata."""
    from restoregan.gans import warp

    names = input_names(net)
    dynamic = {n: {0: "batch", 2: "height", 3: "width"} for n in names if n != "t"}
    if "t" in names:
        dynamic["t"] = {0: "batch"}
    dynamic["output"] = {0: "batch", 2: "out_height", 3: "out_width"}
    side = TRACE_SIDE + (-TRACE_SIDE % onnx_multiple(net))
    buffer = io.BytesIO()
    grids = set(warp._GRIDS)  # the warp's per-size grid cache must not hand the tracer a constant of the trace size
    warp._GRIDS.clear()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes (verified below)
            torch.onnx.export(net.eval(), example_inputs(net, in_channels, side, side), buffer, dynamo=False,
                              input_names=names, output_names=["output"], dynamic_axes=dynamic, opset_version=opset,
                              do_constant_folding=True)
    finally:
        for key in set(warp._GRIDS) - grids:
            warp._GRIDS.pop(key, None)
    return buffer.getvalue()


def onnx_multiple(net: nn.Module) -> int:
    """What the graph's input sides must divide: the network's own multiple, or SELF_PADDING's."""
    own = net_multiple(net)
    extra = SELF_PADDING.get(type(net).__name__, 1)
    return own * extra // math.gcd(own, extra)


def with_metadata(model_bytes: bytes, metadata: Mapping[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "restoregan"
    return model.SerializeToString()


def export_onnx(
    net: nn.Module,
    arch: Mapping[str, Any],
    task_config: Mapping[str, Any],
    card: Mapping[str, Any] | None,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> float | None:
    """Write `net` (CPU, fp32, eval mode) as an ONNX file at `path`, whole or not at all. With `check` the graph is
    first compared with PyTorch at sizes other than the trace's (`verify_onnx`); a difference of TOLERANCE or more
    (relative to outputs beyond 1) is refused and nothing is written. Returns that difference (None without
    `check`)."""
    if takes_clips(net):  # a loop over a clip's frames: a trace would fix T
        raise ValueError(f"{path}: not written: {type(net).__name__} restores clips with a loop over their frames, "
                         "which ONNX export does not support yet; use the model's .safetensors export")
    net = net.float().cpu().eval()
    channels = network_channels(net, arch)
    scale = int(getattr(net, "scale", 1))
    multiple = onnx_multiple(net)
    metadata = {
        "restoregan.format": ONNX_FORMAT,
        "restoregan.task": json.dumps(dict(task_config)),
        "restoregan.generator": json.dumps(dict(arch)),
        "restoregan.scale": str(scale),
        "restoregan.pad_multiple": str(multiple),
        "restoregan.channels": json.dumps(list(channels)),
        "restoregan.card": json.dumps(dict(card or {})),
    }
    data = with_metadata(onnx_bytes(net, channels[0], opset), metadata)
    diff = None
    if check:
        diff, peak = verify_onnx(net, data, channels[0], multiple)
        allowed = TOLERANCE * max(1.0, peak)
        if not diff < allowed:
            raise ValueError(f"{path}: not written: onnxruntime differs from PyTorch by {diff:.3g} (max abs, outputs "
                             f"up to {peak:.3g}; allowed < {allowed:.3g})")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, durable=True)
    return diff


def check_sizes(multiple: int) -> list[tuple[int, int]]:
    """Two (h, w) other than the trace's square and other than each other, multiples of `multiple`."""
    m = max(multiple, 1)
    up = lambda n: n + (-n % m)  # noqa: E731
    return [(up(40), up(88)), (up(72), up(24))]


def max_abs_diff(net: nn.Module, model: bytes | str | Path, in_channels: int, sizes: list[tuple[int, int]]
                 ) -> tuple[float, float]:
    """Max abs difference between onnxruntime (CPU) and PyTorch on random inputs of `sizes` (batch 3 and, for the
    others, 1: the batch axis is dynamic too), and PyTorch's largest output magnitude."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = peak = 0.0
    for k, (h, w) in enumerate(sizes):
        x = example_inputs(net, in_channels, h, w, seed=k + 1, batch=3 if k == 0 else 1)
        with torch.no_grad():
            ref = net(*x).float().numpy()
        out = session.run(None, {n: v.numpy() for n, v in zip(names, x)})[0]
        if out.shape != ref.shape:
            return float("inf"), float(np.abs(ref).max())
        worst = max(worst, float(np.abs(out - ref).max()))
        peak = max(peak, float(np.abs(ref).max()))
    return worst, peak


def verify_onnx(net: nn.Module, model: bytes | str | Path, in_channels: int, multiple: int) -> tuple[float, float]:
    """(max abs difference, peak output magnitude) at two sizes other than the trace's (`check_sizes`)."""
    return max_abs_diff(net, model, in_channels, check_sizes(multiple))
