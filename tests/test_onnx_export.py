"""ONNX exports (restoregan.gans.onnx_export) checked with onnxruntime against PyTorch for every generator config,
and .onnx files in infer.py, the film pipeline and load_model: ours, someone else's, and hostile ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from cli_utils import ROOT, compose_conf, infer_in_process, photo_folder
from interp_utils import write_folder
from pipeline_utils import make_export, moving_clip, run_infer
from restoregan.exporting import export
from restoregan.gans.checkpoint import CheckpointError, generator_class, save_export
from restoregan.gans.onnx_export import export_onnx
from restoregan.gans.onnx_model import influence_radius
from restoregan.gans.sizes import net_multiple, receptive_radius
from restoregan.models import load_model
from restoregan.tasks.colorize import ColorizationTask
from restoregan.tasks.interp import InterpolationTask
from restoregan.tasks.restore import RestorationTask
from restoregan.tasks.sr import SuperResolutionTask

TEMPORAL = {"temporal_restorer", "temporal_restorer_small"}  # clip models: refused (test below)
GENERATORS = sorted(p.stem for p in (ROOT / "conf" / "generator").glob("*.yaml") if p.stem not in TEMPORAL)
FAST = {"rrdbnet_small", "srresnet_small", "restore_unet_small", "restore_unet", "interp_small", "interp",
        "colorize_unet_small"}  # the others take 5-40 s on a 2-core CPU
# sides other than the 64x64 trace and each other, multiples of every config's pad multiple (16; 32 for the
# colorizer pads itself), so the raw graph takes them
SIZES = [(32, 96), (80, 48)]


def generator(name: str, scale: int = 4) -> tuple[nn.Module, dict]:
    """conf/generator/<name>.yaml built with random weights: one training-mode pass sets spectral-norm vectors and
    BatchNorm statistics, and zero-initialised layers (heads, attention gates) get small random values."""
    cfg = OmegaConf.merge({"pretrained_backbones": False, "task": {"scale": scale}},
                          {"g": OmegaConf.load(ROOT / "conf" / "generator" / f"{name}.yaml")})
    arch = OmegaConf.to_container(cfg, resolve=True)["g"]
    torch.manual_seed(0)
    net = generator_class(Path(name), arch["_target_"])(**{k: v for k, v in arch.items() if k != "_target_"})
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(std=0.1)
        net.train()
        net(*inputs(net, 2, 64, 64))
    return net.eval(), arch


def inputs(net: nn.Module, batch: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    name = type(net).__name__
    if name == "InterpolationNet":
        return (torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g),
                torch.rand(batch, generator=g))
    return (torch.rand(batch, 1 if name == "ColorizeUNet" else 3, h, w, generator=g),)


def task_for(arch: dict) -> dict:
    cls = arch["_target_"].rsplit(".", 1)[-1]
    task = {"RRDBNet": SuperResolutionTask(arch.get("scale", 4)), "SRResNet": SuperResolutionTask(arch.get("scale", 4)),
            "RestoreUNet": RestorationTask(grey=False), "ColorizeUNet": ColorizationTask(),
            "InterpolationNet": InterpolationTask()}[cls]
    return task.config()


def ort_vs_torch(net: nn.Module, path: Path, sizes: list[tuple[int, int]]) -> float:
    """Max abs difference between onnxruntime on the file and PyTorch, batch 2, at `sizes`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    for k, (h, w) in enumerate(sizes):
        x = inputs(net, 2, h, w, seed=10 + k)
        with torch.no_grad():
            ref = net(*x).numpy()
        out = session.run(None, {n: v.numpy() for n, v in zip(names, x)})[0]
        assert out.shape == ref.shape
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in GENERATORS])
def test_every_generator_exports_with_dynamic_sizes(name: str, tmp_path: Path) -> None:
    net, arch = generator(name)
    start = time.perf_counter()
    checked = export_onnx(net, arch, task_for(arch), {"name": name}, tmp_path / f"{name}.onnx")
    diff = ort_vs_torch(net, tmp_path / f"{name}.onnx", SIZES)
    print(f"{name}: max abs diff {diff:.3g} (export's own check {checked:.3g}), {time.perf_counter() - start:.1f} s")
    assert diff < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / f"{name}.onnx")).metadata_props}
    assert meta["restoregan.format"] == "1" and meta["restoregan.scale"] == str(getattr(net, "scale", 1))


def test_x2_rrdbnet_pads_through_its_pixel_unshuffle(tmp_path: Path) -> None:
    """RRDBNet x2 needs even sides: the loaded ONNX model pads an odd image and crops, as PyTorch's callers do."""
    net, arch = generator("rrdbnet_small", scale=2)
    export_onnx(net, arch, task_for(arch), None, tmp_path / "x2.onnx")
    assert ort_vs_torch(net, tmp_path / "x2.onnx", [(30, 46)]) < 1e-4
    model = load_model(tmp_path / "x2.onnx")
    assert (model.task.name, model.scale, model.pad_multiple) == ("sr", 2, 2)
    x = torch.rand(1, 3, 25, 31)
    padded = nn.functional.pad(x, (0, 1, 0, 1), mode="reflect")
    with torch.no_grad():
        assert (model.net(x) - net(padded)[..., :50, :62]).abs().max() < 1e-4


def test_receptive_radius_without_gradients_equals_the_gradient_one(tmp_path: Path) -> None:
    """Tiling's note needs the receptive radius; an ONNX graph has no gradients, so it is measured by poking one
    pixel (influence_radius): the gradient's number on the PyTorch network, widened by at most the stride."""
    for name, scale in (("srresnet_small", 2), ("restore_unet_small", 1)):
        net, arch = generator(name, scale)
        export_onnx(net, arch, task_for(arch), None, tmp_path / f"{name}.onnx", check=False)
        model = load_model(tmp_path / f"{name}.onnx")
        by_gradient = receptive_radius(net, 3, multiple=net_multiple(net))
        # equal for a convolution stack; a U-Net striding by 4 reaches up to 3 pixels further from other pixels
        assert by_gradient <= influence_radius(model.net, 3) <= by_gradient + net_multiple(net) - 1


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def test_infer_with_onnx_equals_the_pytorch_export(tmp_path: Path, capsys) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    cfg = compose_conf("export", [f"ckpt={src}", f"output={tmp_path / 'sr.onnx'}", "card.author=Tester"])
    written, diff = export(cfg)
    assert written == [tmp_path / "sr.onnx"] and diff < 1e-4
    photos = photo_folder(tmp_path / "photos", 1)
    for tile in ("null", "48"):
        ref = infer_in_process([f"ckpt={src}", f"input={photos}", f"output={tmp_path / 'pt'}", f"tile={tile}"])
        out = infer_in_process([f"ckpt={tmp_path / 'sr.onnx'}", f"input={photos}", f"output={tmp_path / 'onnx'}",
                                f"tile={tile}", "channels_last=true", "compile=true"])
        assert np.abs(_png(ref[0]) - _png(out[0])).max() <= 1
    printed = capsys.readouterr().out
    assert "model card: tiny_sr, author: Tester" in printed  # the run folder names it
    assert "channels_last, compile do not apply" in printed


def test_colorize_onnx_equals_the_pytorch_export(tmp_path: Path) -> None:
    net, arch = generator("colorize_unet_small")
    save_export(tmp_path / "color", net, arch, {"task": task_for(arch), "scale": 1})
    export(compose_conf("export", [f"ckpt={tmp_path / 'color.yaml'}", f"output={tmp_path / 'color.onnx'}"]))
    model = load_model(tmp_path / "color.onnx")
    assert (model.task.name, model.in_channels, model.out_channels, model.pad_multiple) == ("colorize", 1, 2, 32)
    photos = photo_folder(tmp_path / "photos", 1)
    ref = infer_in_process([f"ckpt={tmp_path / 'color.yaml'}", f"input={photos}", f"output={tmp_path / 'pt'}",
                            "exact=true"])  # fp32, as the ONNX graph runs
    out = infer_in_process([f"ckpt={tmp_path / 'color.onnx'}", f"input={photos}", f"output={tmp_path / 'onnx'}"])
    assert np.abs(_png(ref[0]) - _png(out[0])).max() <= 1


def test_interp_onnx_runs_the_pipeline_stage(tmp_path: Path) -> None:
    src = make_export(tmp_path / "runs", "tiny_interp", "interp")
    export(compose_conf("export", [f"ckpt={src}", f"output={tmp_path / 'interp.onnx'}"]))
    frames = write_folder(tmp_path / "frames", moving_clip(4))
    outs = {}
    for kind, ckpt in (("pt", src), ("onnx", tmp_path / "interp.onnx")):
        run_infer([f"input={frames}", f"output={tmp_path / kind}", "pipeline.order=[interpolate]",
                   f"stages.interpolate.ckpt={ckpt}", "video.contact_frames=0"])
        outs[kind] = sorted((tmp_path / kind).glob("*.png"))
    assert len(outs["onnx"]) == len(outs["pt"]) == 8
    for a, b in zip(outs["pt"], outs["onnx"]):
        assert np.abs(_png(a) - _png(b)).max() <= 1


class _Doubler(nn.Module):
    """Someone else's x2 model: a conv and a pixel shuffle."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def _foreign(path: Path, scale: int, dynamic: bool = True) -> nn.Module:
    torch.manual_seed(scale)
    net = _Doubler(scale).eval()
    axes = {"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "H", 3: "W"}} if dynamic else None
    torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes=axes, opset_version=17)
    return net


@pytest.mark.parametrize(("scale", "task"), [(2, "sr"), (1, "restore")])
def test_foreign_onnx_is_adopted_by_its_probed_scale(tmp_path: Path, scale: int, task: str) -> None:
    net = _foreign(tmp_path / "theirs.onnx", scale)
    model = load_model(tmp_path / "theirs.onnx")
    assert (model.task.name, model.scale, model.in_channels, model.out_channels) == (task, scale, 3, 3)
    x = torch.rand(1, 3, 21, 34)
    with torch.no_grad():
        assert (model.net(x) - net(x)).abs().max() < 1e-5


def _one_line(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_hostile_onnx_files_are_refused_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 40)
    _one_line(garbage, "not an ONNX model")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _one_line(empty, "not an ONNX model")

    _foreign(tmp_path / "theirs.onnx", 2)
    model = onnx.load(str(tmp_path / "theirs.onnx"))
    onnx.save(model, str(tmp_path / "external.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    _one_line(tmp_path / "external.onnx", "external data")

    custom = onnx.load(str(tmp_path / "theirs.onnx"))
    custom.graph.node[0].domain = "evil.ops"
    custom.opset_import.add(domain="evil.ops", version=1)
    onnx.save(custom, str(tmp_path / "custom.onnx"))
    _one_line(tmp_path / "custom.onnx", "domain 'evil.ops'")

    _foreign(tmp_path / "fixed.onnx", 2, dynamic=False)
    _one_line(tmp_path / "fixed.onnx", "fixed size 16x16")

    flat = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n"])]))
    onnx.save(flat, str(tmp_path / "flat.onnx"))
    _one_line(tmp_path / "flat.onnx", "1-D")


def test_our_onnx_with_bad_metadata_is_refused(tmp_path: Path) -> None:
    net, arch = generator("srresnet_small", scale=2)
    export_onnx(net, arch, task_for(arch), None, tmp_path / "ok.onnx", check=False)
    for key, value, match in [("restoregan.task", "{not json", "not valid JSON"),
                              ("restoregan.task", '{"_target_": "builtins.eval"}', "not allowed"),
                              ("restoregan.card", '{"name": {"nested": 1}}', "card.name"),
                              ("restoregan.scale", "3", "scales x3|x3")]:
        model = onnx.load(str(tmp_path / "ok.onnx"))
        next(p for p in model.metadata_props if p.key == key).value = value
        onnx.save(model, str(tmp_path / "bad.onnx"))
        _one_line(tmp_path / "bad.onnx", match)


def test_export_refuses_onnx_input_and_never_overwrites(tmp_path: Path) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    with pytest.raises(ValueError, match="would overwrite an input"):
        export(compose_conf("export", [f"ckpt={src}", "format=safetensors", f"output={src.with_suffix('')}"]))
    export(compose_conf("export", [f"ckpt={src}", f"output={tmp_path / 'a.onnx'}"]))
    with pytest.raises(ValueError, match="not a network export.py can convert"):
        export(compose_conf("export", [f"ckpt={tmp_path / 'a.onnx'}", f"output={tmp_path / 'b.onnx'}"]))
    assert not (tmp_path / "b.onnx").exists()


class _SizeBranch(nn.Module):
    """A Python branch on the input size: tracing at 64x64 freezes it, so the graph is wrong at other sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.shape[-1] == 64 else x


def test_an_export_that_differs_from_pytorch_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not written: onnxruntime differs from PyTorch by 1"):
        export_onnx(_SizeBranch(), {"_target_": "tests._SizeBranch"}, RestorationTask(grey=False).config(), None,
                    tmp_path / "wrong.onnx")
    assert list(tmp_path.iterdir()) == []


def _ours(path: Path, task: dict, *, inputs: int = 1, scale: str = "1", channels: str = "[3, 3]",
          dims: tuple = (None, 3, None, None), weight: float | None = None) -> Path:
    """An identity graph (plus a weight when given) with our metadata: what it says is up to the test."""
    helper = onnx.helper
    names = ["frame0", "frame1", "t"] if inputs == 3 else ["input", "second"][:inputs]
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None] if n == "t" else list(dims)) for n in names]
    nodes, init = [helper.make_node("Identity", [names[0]], ["output"])], []
    if weight is not None:
        init = [onnx.numpy_helper.from_array(np.array([1.0, weight, 2.0], np.float32).reshape(1, 3, 1, 1), "w")]
        nodes = [helper.make_node("Mul", [names[0], "w"], ["output"])]
    out = helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, list(dims))
    model = helper.make_model(helper.make_graph(nodes, "g", ins, [out], init),
                              opset_imports=[helper.make_opsetid("", 17)])
    meta = {"restoregan.format": "1", "restoregan.task": json.dumps(task), "restoregan.scale": scale,
            "restoregan.generator": json.dumps({"_target_": "restoregan.gans.rrdbnet.RRDBNet"}),
            "restoregan.pad_multiple": "1", "restoregan.channels": channels}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


SR4 = {"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 4}
RESTORE = {"_target_": "restoregan.tasks.restore.RestorationTask", "grey": False}
INTERP = {"_target_": "restoregan.tasks.interp.InterpolationTask"}


def test_our_onnx_whose_metadata_the_graph_belies_is_refused(tmp_path: Path) -> None:
    honest = load_model(_ours(tmp_path / "honest.onnx", RESTORE))  # the control: what it says is true
    x = torch.rand(1, 3, 7, 9)
    assert (honest.task.name, honest.scale) == ("restore", 1) and torch.equal(honest.net(x), x)
    start = time.perf_counter()
    _one_line(_ours(tmp_path / "scale.onnx", SR4, scale="4"), r"restoregan.scale says x4, but .* 16x16 probe to 16x16")
    assert time.perf_counter() - start < 2  # one small probe: loading stays quick
    _one_line(_ours(tmp_path / "sr3.onnx", SR4, inputs=3, scale="4"), "3 inputs; its task needs one image input")
    _one_line(_ours(tmp_path / "sr2.onnx", SR4, inputs=2, scale="4"), "2 inputs; its task needs one image input")
    _one_line(_ours(tmp_path / "interp1.onnx", INTERP), "1 input; the interpolation task needs frame0, frame1, t")
    colorize = {"_target_": "restoregan.tasks.colorize.ColorizationTask"}
    _one_line(_ours(tmp_path / "chan.onnx", colorize, channels="[1, 2]"), "takes 3 channels; .* says 1")
    any_channels = (None, None, None, None)  # the graph does not declare them: the probe tells
    _one_line(_ours(tmp_path / "out.onnx", RESTORE, channels="[3, 2]", dims=any_channels),
              "restoregan.channels says 2 output channels, but the graph gives 3")
    _one_line(_ours(tmp_path / "in.onnx", RESTORE, channels="[2, 2]", dims=(None, 3, None, None)), "takes 3 channels")
    _one_line(_ours(tmp_path / "sup.onnx", SR4, scale="²"), r"restoregan.scale: '²' is not a whole number")


def test_an_interp_task_refuses_a_one_input_onnx_saying_why(tmp_path: Path) -> None:
    from restoregan.gans.onnx_model import OnnxGenerator, read_onnx, session_for

    path = _ours(tmp_path / "one.onnx", RESTORE)
    net = OnnxGenerator(session_for(path, read_onnx(path), torch.device("cpu")), 1, 1, False)
    arch = {"_target_": "restoregan.gans.interp_net.InterpolationNet"}  # what its metadata might claim
    with pytest.raises(CheckpointError, match="an ONNX model with 1 input.*needs frame0, frame1, t") as info:
        InterpolationTask().check_network(path, net, arch)
    assert "InterpolationNet" not in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_onnx_with_non_finite_weights_is_refused(tmp_path: Path, bad: float) -> None:
    fine = load_model(_ours(tmp_path / "fine.onnx", RESTORE, weight=3.0))
    x = torch.rand(1, 3, 5, 6)
    assert torch.allclose(fine.net(x), x * torch.tensor([1.0, 3.0, 2.0]).view(1, 3, 1, 1))
    what = "NaN" if np.isnan(bad) else "infinite"
    _one_line(_ours(tmp_path / "ours.onnx", RESTORE, weight=bad), f"weight w holds 1 {what} values of 3")
    # someone else's file too (no metadata): the same weights
    theirs = onnx.load(str(tmp_path / "ours.onnx"))
    del theirs.metadata_props[:]
    onnx.save(theirs, str(tmp_path / "theirs.onnx"))
    _one_line(tmp_path / "theirs.onnx", f"weight w holds 1 {what} values")


@pytest.mark.parametrize("name", sorted(TEMPORAL))
def test_temporal_generators_are_refused_in_one_line(name: str, tmp_path: Path) -> None:
    """A temporal restorer loops over a clip's frames; a trace would fix the clip length, so no file is written."""
    cfg = OmegaConf.load(ROOT / "conf" / "generator" / f"{name}.yaml")
    arch = OmegaConf.to_container(cfg, resolve=True)
    net = generator_class(Path(name), arch["_target_"])(**{k: v for k, v in arch.items() if k != "_target_"})
    target = tmp_path / "t.onnx"
    with pytest.raises(ValueError, match="not written: TemporalRestorer restores clips") as err:
        export_onnx(net.eval(), arch, {"_target_": "restoregan.tasks.restore_video.VideoRestorationTask"}, None, target)
    assert "\n" not in str(err.value) and not target.exists()
