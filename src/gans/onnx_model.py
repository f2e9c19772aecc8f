"""ONNX model files (`.onnx`) for infer.py, evaluate.py and the film pipeline: ours (`restoregan.gans.onnx_export`,
with their task in the metadata) and foreign ones (e.g. a Real-ESRGAN exported by chaiNNer), run by onnxruntime
behind the `net(x)` / `.scale` interface of our generators (`OnnxGenerator`).

A model file is data: onnxruntime runs the graph's operators and nothing else, and custom operator libraries are
never registered, so a file can run no code of its own. Refused in one line: a file that is no ONNX protobuf,
one whose tensors live in other files (external data: a model file must not make us read what it names), nodes
of operator domains onnxruntime does not itself implement, NaN or infinite weights, inputs other than one 4-D image
(or, for an interpolation task, frame0, frame1, t), and metadata that is no plain JSON or that the graph belies
(checked on one small probe: output side = input side x scale, output channels as declared). A foreign file says
nothing of its task: its scale is measured on a 64x64 probe (output side / input side), and it is adopted like a
community model of spandrel's ("SR" above 1x, "Restoration" at 1x).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.checkpoint import first_line  # imports nothing of this module at load time

ALLOWED_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}  # onnxruntime's own operators
MAX_METADATA = 64 * 1024  # bytes of one metadata value; ours hold a few hundred
PROBE_SIDE = 64
OWN_PROBE_SIDE = 16  # our exports are checked on this side (rounded up to their pad multiple): small, for load time
MULTIPLES = (2, 4, 8, 16, 32)  # a foreign model refusing an odd side is probed for the multiple it needs


class OnnxGenerator(nn.Module):
    """An ONNX graph run by onnxruntime: `net(x)` for an image model ((b, c, h, w) float in, (b, c', h s, w s) out,
    inputs padded to `pad_multiple` and the output cropped back), `net(frame0, frame1, t)` for an interpolation
    net. Tensors come back on the input's device. It holds no parameters: `.to()` moves nothing (the session's
    execution provider is chosen at load), channels_last and bf16 leave the graph as it is, `compile()` does
    nothing (onnxruntime optimises the graph itself) and no gradients flow."""

    def __init__(self, session: Any, scale: int, pad_multiple: int, interpolator: bool) -> None:
        super().__init__()
        self.session = session
        self.scale = int(scale)
        self.pad_multiple = int(pad_multiple)  # also read by restoregan.gans.sizes.net_multiple
        self.interpolator = interpolator
        self.frame_interpolator = interpolator  # takes (frame0, frame1, t): restoregan.tasks.interp accepts it
        self.names = [i.name for i in session.get_inputs()]

    def compile(self, *args: Any, **kwargs: Any) -> None:  # noqa: A003 - nn.Module's name
        """Nothing to compile: onnxruntime optimises the graph when the session is made."""

    def forward(self, x: Tensor, *more: Any) -> Tensor:
        if self.interpolator:
            frame0, frame1, t = x, *more
            t = torch.as_tensor(t, dtype=torch.float32).flatten()
            t = t.expand(frame0.shape[0]) if t.numel() == 1 else t
            return self._run([frame0, frame1, t], x.device)
        h, w = x.shape[-2:]
        y = self._run([pad_to(x, self.pad_multiple)], x.device)
        return y[..., : h * self.scale, : w * self.scale]

    def _run(self, inputs: list[Tensor], device: torch.device) -> Tensor:
        feed = {n: v.detach().float().cpu().contiguous().numpy() for n, v in zip(self.names, inputs)}
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(np.ascontiguousarray(out)).to(device)


def pad_to(x: Tensor, multiple: int) -> Tensor:
    """Pad bottom/right to a multiple: reflect, or replicate when a side is too short to reflect (ColorizeUNet's
    own rule; callers of the other networks hand them sides that are multiples already)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")


def _fail(path: Path, message: str) -> Exception:
    from restoregan.gans.checkpoint import CheckpointError

    return CheckpointError(f"{path}: {message}")


def read_onnx(path: Path) -> Any:
    """The file's ModelProto, checked: a protobuf onnx reads, no external data, only onnxruntime's own domains."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError:
        raise  # unreadable: the OSError names the path
    except Exception as err:  # protobuf's DecodeError (not imported: protobuf is onnx's own dependency) and others
        raise _fail(path, f"not an ONNX model (unreadable protobuf: {first_line(err)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise _fail(path, "not an ONNX model (no graph)")
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            names = {e.key: e.value for e in tensor.external_data}
            raise _fail(path, f"refers to external data ({names.get('location', '?')[:60]} for tensor "
                              f"{tensor.name[:60]}); only self-contained ONNX files are loaded")
    local = {f.domain for f in model.functions}
    for node in _nodes(model):
        if node.domain not in ALLOWED_DOMAINS and node.domain not in local:
            raise _fail(path, f"uses operators of domain {node.domain[:60]!r} (node {node.op_type[:40]}), which "
                              "onnxruntime does not implement itself; custom operators are not loaded")
    return model


def _subgraphs(node: Any) -> list:
    out = []
    for attr in node.attribute:
        if attr.HasField("g"):
            out.append(attr.g)
        out.extend(attr.graphs)
    return out


def _tensors(graph: Any) -> list:
    found = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                found.append(attr.t)
            found.extend(attr.tensors)
        for sub in _subgraphs(node):
            found.extend(_tensors(sub))
    return found


def _nodes(model: Any) -> list:
    def walk(graph: Any) -> list:
        out = []
        for node in graph.node:
            out.append(node)
            for sub in _subgraphs(node):
                out.extend(walk(sub))
        return out

    nodes = walk(model.graph)
    for function in model.functions:
        nodes.extend(function.node)
    return nodes


def session_for(path: Path, model: Any, device: torch.device) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())  # OMP_NUM_THREADS / torch's setting
    options.log_severity_level = 3  # errors only: its warnings are about the graph, not the user's run
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    except Exception as err:  # onnxruntime's own exception types; the message says what
        raise _fail(path, f"onnxruntime cannot load it: {first_line(err)}") from None


def _metadata(path: Path, model: Any) -> dict[str, str]:
    meta = {}
    for entry in model.metadata_props:
        if len(entry.value) > MAX_METADATA:
            raise _fail(path, f"metadata {entry.key[:40]}: {len(entry.value)} bytes, more than a description holds")
        meta[entry.key] = entry.value
    return meta


def _json(path: Path, meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as err:
        raise _fail(path, f"metadata {key}: not valid JSON ({first_line(err)})") from None


def _whole(path: Path, meta: dict[str, str], key: str) -> int:
    text = meta.get(key, "")
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 0 < int(text) <= 64:  # not isdigit(): "²" is a digit
        raise _fail(path, f"metadata {key}: {text[:40]!r} is not a whole number from 1 to 64")
    return int(text)


def load_onnx(path: Path, device: torch.device | str = "cpu") -> Any:
    """A LoadedGenerator for an `.onnx` file (see module doc)."""
    from restoregan.gans.checkpoint import LoadedGenerator, plain_value

    device = torch.device(device)
    model = read_onnx(path)
    check_finite_tensors(path, model)
    meta = _metadata(path, model)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if "restoregan.format" not in meta:
        return _foreign(path, model, inputs, device)
    if meta["restoregan.format"] != "1":
        raise _fail(path, f"restoregan.format {meta['restoregan.format'][:20]!r}: written by a newer version")
    task = _json(path, meta, "restoregan.task")
    arch = _json(path, meta, "restoregan.generator")
    if not isinstance(arch, dict) or not isinstance(arch.get("_target_"), str):
        raise _fail(path, "metadata restoregan.generator: not a generator description")
    arch = {str(k): plain_value(path, f"generator.{k}", v) for k, v in arch.items()}
    channels = _json(path, meta, "restoregan.channels")
    if not (isinstance(channels, list) and len(channels) == 2
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 < c <= 64 for c in channels)):
        raise _fail(path, "metadata restoregan.channels: not [input channels, output channels]")
    extra = {}
    if "restoregan.card" in meta:
        from restoregan.gans.card import check_card

        try:
            extra["card"] = check_card(path, _json(path, meta, "restoregan.card"))
        except ValueError as err:
            raise _fail(path, str(err).removeprefix(f"{path}: ")) from None
    interpolator = _is_interpolation(path, task)
    if len(inputs) != (3 if interpolator else 1):
        plural = "" if len(inputs) == 1 else "s"
        raise _fail(path, f"an ONNX model with {len(inputs)} input{plural}; " + (
            "the interpolation task needs frame0, frame1, t" if interpolator
            else "its task needs one image input (b, c, h, w)"))
    net = OnnxGenerator(session_for(path, model, device), _whole(path, meta, "restoregan.scale"),
                        _whole(path, meta, "restoregan.pad_multiple"), interpolator)
    _check_graph(path, net, inputs, channels)
    # arch is what it was exported from, with the graph's channels (the tasks' checks read num_in_ch / num_out_ch,
    # which ColorizeUNet declares by its class's defaults); nothing is ever built from it
    arch = {**arch, "num_in_ch": channels[0], "num_out_ch": channels[1]}
    return LoadedGenerator(net, net.scale, task, arch, f"ONNX export of {arch['_target_']}", extra, None,
                           (channels[0], channels[1]), net.pad_multiple, described_in=path)


def _is_interpolation(path: Path, task: Any) -> bool:
    """Whether the metadata's task takes frame triples (its class is checked against the allow-list here; the
    task itself is built later, by restoregan.models.describe)."""
    from restoregan.models import task_class
    from restoregan.tasks.interp import InterpolationTask

    if not isinstance(task, dict) or "_target_" not in task:
        return False  # refused later, in one line, by build_task
    return issubclass(task_class(path, task.get("_target_")), InterpolationTask)


def _check_graph(path: Path, net: OnnxGenerator, inputs: list, channels: list[int]) -> None:
    """The metadata (scale, channels, pad multiple) checked against the graph on one small probe: a file whose
    metadata lies would otherwise load, and its output be cropped or fed to the wrong task without a word."""
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise _fail(path, f"input {inputs[0].name[:40]} is {len(dims)}-D; an image model takes (b, c, h, w)")
    if dims[1] is not None and dims[1] != channels[0]:
        raise _fail(path, f"input {inputs[0].name[:40]!r} takes {dims[1]} channels; metadata restoregan.channels "
                          f"says {channels[0]}")
    side = -(-OWN_PROBE_SIDE // net.pad_multiple) * net.pad_multiple
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels[0], side, side, generator=g)
    feed = [x, torch.rand(1, channels[0], side, side, generator=g), torch.full((1,), 0.5)] if net.interpolator else [x]
    try:
        y = net._run(feed, x.device)  # uncropped
    except Exception as err:  # onnxruntime's errors: the metadata's channels or pad multiple do not fit the graph
        raise _fail(path, f"fails on a {channels[0]}-channel {side}x{side} probe (as its metadata describes it): "
                          f"{first_line(err)}") from None
    want = (1, channels[1], side * net.scale, side * net.scale)
    if y.dim() != 4 or y.shape[0] != 1 or y.shape[-2] != y.shape[-1]:
        raise _fail(path, f"maps a {side}x{side} probe to {tuple(y.shape)}; not an image model's output")
    if y.shape[-1] != want[-1]:
        raise _fail(path, f"metadata restoregan.scale says x{net.scale}, but the graph maps a {side}x{side} probe to "
                          f"{y.shape[-2]}x{y.shape[-1]}")
    if y.shape[1] != channels[1]:
        raise _fail(path, f"metadata restoregan.channels says {channels[1]} output channels, but the graph gives "
                          f"{y.shape[1]}")


def check_finite_tensors(path: Path, model: Any) -> None:
    """Refuse NaN or infinite weights, as restoregan.gans.checkpoint.check_finite does for PyTorch ones (an
    OnnxGenerator has no state dict): the graph's initializers and constants."""
    from onnx import TensorProto, numpy_helper

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    tensors = _tensors(model.graph) + [a.t for f in model.functions for n in f.node for a in n.attribute
                                       if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_type not in floats:
            continue
        name = tensor.name[:60] or "(a Constant node's value)"
        try:
            value = np.asarray(numpy_helper.to_array(tensor), dtype=np.float32)
        except Exception as err:  # raw data of the wrong size and the like
            raise _fail(path, f"weight {name} is unreadable ({first_line(err)})") from None
        finite = np.isfinite(value)
        if not finite.all():
            what = "NaN" if np.isnan(value).any() else "infinite"
            raise _fail(path, f"weight {name} holds {int((~finite).sum())} {what} values of {value.size}; the "
                              "model is broken (a diverged training run or a damaged file)")


def _dims(value_info: Any) -> list:
    tensor = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _foreign(path: Path, model: Any, inputs: list, device: torch.device) -> Any:
    """Someone else's image-to-image model: one 4-D float input, one 4-D output; scale measured on a probe."""
    import onnx

    from restoregan.gans.checkpoint import LoadedGenerator

    if len(inputs) != 1:
        raise _fail(path, f"{len(inputs)} inputs; a model file of someone else's must take one image (b, c, h, w)")
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise _fail(path, f"input {inputs[0].name[:40]} is {len(dims)}-D; an image model takes (b, c, h, w)")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise _fail(path, f"input {inputs[0].name[:40]} is not a float32 tensor (an fp16 or integer graph); export "
                          "it with float32 inputs and outputs")
    if dims[2] is not None or dims[3] is not None:
        raise _fail(path, f"input {inputs[0].name[:40]} has a fixed size {dims[2]}x{dims[3]}; re-export it with "
                          "dynamic height and width")
    out_dims = _dims(model.graph.output[0]) if model.graph.output else []
    if out_dims and len(out_dims) != 4:
        raise _fail(path, f"output is {len(out_dims)}-D; an image model returns (b, c, h, w)")
    in_ch = dims[1] or 3
    session = session_for(path, model, device)
    probe = OnnxGenerator(session, 1, 1, False)
    y = _probe(path, probe, in_ch, PROBE_SIDE)
    if y is None:
        raise _fail(path, f"fails on a {PROBE_SIDE}x{PROBE_SIDE} probe image")
    if y.dim() != 4 or y.shape[-1] % PROBE_SIDE or y.shape[-2] != y.shape[-1] or not y.shape[-1]:
        raise _fail(path, f"maps a {PROBE_SIDE}x{PROBE_SIDE} image to {tuple(y.shape)}; not an image model of a "
                          "whole scale")
    scale = y.shape[-1] // PROBE_SIDE
    multiple = 1
    if _probe(path, probe, in_ch, PROBE_SIDE + 3) is None:  # an odd side fails: find the multiple it needs
        multiple = next((m for m in MULTIPLES if _probe(path, probe, in_ch, PROBE_SIDE + m) is not None), 64)
    net = OnnxGenerator(session, scale, multiple, False)
    purpose = "SR" if scale > 1 else "Restoration"
    return LoadedGenerator(net, scale, None, None, f"ONNX model ({model.producer_name or 'unknown producer'})", {},
                           purpose, (int(in_ch), int(y.shape[1])), multiple)


def _probe(path: Path, net: OnnxGenerator, channels: int, side: int) -> Tensor | None:
    x = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0))
    try:
        return net._run([x], x.device)  # uncropped
    except Exception:  # onnxruntime's errors on a size the graph cannot take
        return None


def influence_radius(net: OnnxGenerator, in_channels: int, cap: int = 64) -> int | None:
    """The receptive radius (input pixels of context each output pixel sees) measured without gradients, which an
    ONNX graph does not give: the output pixels that change when one input pixel in the middle changes, widened by
    pad_multiple - 1 for networks that stride (their reach depends on the pixel's place in a block). For the
    convolutional networks tiling is meant for, that is the receptive field or a little more. None when it
    reaches the probe's border (wider than `cap`, or global)."""
    side = 2 * cap + 1
    side += -side % net.pad_multiple
    c = side // 2
    x = torch.rand(1, in_channels, side, side, generator=torch.Generator().manual_seed(0))
    poked = x.clone()
    poked[..., c, c] += 1000.0  # large: the weakest paths at the field's edge must still change the output in fp32
    changed = (net(x) != net(poked)).any(dim=1)[0].nonzero()  # (k, 2) output positions
    if changed.numel() == 0:
        return 0
    radius = int((changed.div(net.scale, rounding_mode="floor") - c).abs().max())
    # a network that strides by its pad multiple reaches differently from each pixel of a multiple x multiple
    # block: widen by that much so the tiling note errs on the side of printing
    radius += net.pad_multiple - 1
    return None if radius >= c else radius


def prepare_for_infer(model: Any, tile: int | None, switches: dict[str, bool]) -> list[str]:
    """infer.py on an ONNX model: notes for the speed switches that do not apply (the graph runs as exported), and
    the receptive radius its tiling note needs, measured without gradients (`influence_radius`) when tiles are
    asked for. Returns the notes."""
    if not isinstance(model.net, OnnxGenerator):
        return []
    if tile is not None and not model.net.interpolator:
        # Model.receptive_radius is a cached_property: its value set here is the one tiling_note reads
        model.__dict__["receptive_radius"] = influence_radius(model.net, model.in_channels or 3)
    on = [name for name, value in switches.items() if value]
    if not on:
        return []
    return [f"note: {model.path}: an ONNX model runs in onnxruntime as exported; {', '.join(on)} do not apply"]
