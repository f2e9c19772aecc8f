"""Inference speed switches (infer.py channels_last / compile) change no output; the inference bench's quick run
writes a JSON in which our RRDBNet and spandrel's agree on the same weights."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli_utils import infer_in_process
from conftest import ROOT
from restoregan.gans.checkpoint import save_export
from restoregan.gans.rrdbnet import RRDBNet
from restoregan.gans.srresnet import SRResNet
from restoregan.inference.tiled import apply_tiled, prepare_for_inference
from restoregan.pipeline import run as pipeline_run
from restoregan.tasks.sr import SuperResolutionTask

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 4}


def _tiny_rrdbnet() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(**TINY).eval()


def _image(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("tile", [None, 12])
def test_channels_last_gives_the_same_output(tile: int | None) -> None:
    net, x = _tiny_rrdbnet(), _image(3, 21, 30)
    ref = apply_tiled(net, x, 4, tile=tile, overlap=8)
    keys = list(net.state_dict())
    assert prepare_for_inference(net, channels_last=True) is net
    assert net.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    assert list(net.state_dict()) == keys  # exports and checkpoints keep their key names
    out = apply_tiled(net, x, 4, tile=tile, overlap=8)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_compile_gives_the_same_output() -> None:
    # the smallest net that still has a conv, a residual and a pixel shuffle: inductor's cold compile
    # (~10-20 s on CPU) is most of this test's time
    torch.manual_seed(0)
    net, x = SRResNet(num_feat=4, num_block=1, scale=2).eval(), _image(1, 3, 8, 8)
    with torch.inference_mode():
        ref = net(x)
        prepare_for_inference(net, compile=True)
        out = net(x)
    assert type(net) is SRResNet and net.scale == 2  # compiled in place: the module and its attributes stay
    assert net._compiled_call_impl is not None  # calls go through the compiled graph
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_bf16_runs_in_bfloat16_and_returns_float32_close_to_fp32() -> None:
    net, x = _tiny_rrdbnet(), _image(1, 3, 16, 20)
    with torch.inference_mode():
        ref = net(x)
        prepare_for_inference(net, bf16=True)
        out = apply_tiled(net, x, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            direct = net.__class__.forward(net, x).float()  # what the switch promises to run
    assert out.dtype == torch.float32
    assert not torch.equal(out, ref)  # it did run in reduced precision
    torch.testing.assert_close(out, direct, rtol=0, atol=0)
    assert (out - ref).abs().max() < 2e-2


def test_infer_channels_last_option_keeps_the_images(tmp_path, monkeypatch) -> None:
    """The option reaches the model infer.py loads (tiled: tile=8), and the written image is unchanged."""
    seen = []

    def spy(net, *args):  # the real switch, noting the weights' layout it leaves
        out = prepare_for_inference(net, *args)
        seen.append(net.conv_first.weight.is_contiguous(memory_format=torch.channels_last))
        return out

    monkeypatch.setattr(pipeline_run, "prepare_for_inference", spy)  # what infer.py's models go through
    save_export(tmp_path / "g", _tiny_rrdbnet(), {"_target_": "restoregan.gans.rrdbnet.RRDBNet", **TINY},
                {"task": SuperResolutionTask(4).config(), "scale": 4})
    photo = (_image(17, 23, 3).numpy() * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "in.png")
    outs = {}
    for flag in ("false", "true"):
        (path,) = infer_in_process([f"ckpt={tmp_path / 'g.yaml'}", f"input={tmp_path / 'in.png'}",
                                    f"output={tmp_path / flag}", f"channels_last={flag}", "tile=8"])
        outs[flag] = np.asarray(Image.open(path)).astype(int)
    assert seen == [False, True]
    assert outs["true"].shape == (68, 92, 3)
    assert np.abs(outs["true"] - outs["false"]).max() <= 1  # 8-bit rounding of a float-rounding difference


def test_bench_quick_spandrel_section_writes_agreeing_outputs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setenv("BENCH_DEVICE", "cpu")
    spec = importlib.util.spec_from_file_location("perf_inference", ROOT / "bench" / "perf_inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = sys.modules["perf_common"]
    monkeypatch.setattr(common, "ROOT", tmp_path)  # the JSON goes to tmp_path, not bench/results
    monkeypatch.setattr(common, "RESULTS", tmp_path / "perf")
    bench.main(["--only", "spandrel"])
    result = json.loads((tmp_path / "perf" / "inference.json").read_text())
    s = result["spandrel"]
    assert s["spandrel_architecture"] == "ESRGAN" and s["input_shape"] == [1, 3, 16, 16]
    assert s["max_abs_diff"] < 1e-5  # the same weights give the same image in both implementations
    assert s["channels_last_max_abs_diff"] < 1e-5
    assert s["ours_seconds_per_call"] > 0 and s["spandrel_seconds_per_call"] > 0
    assert result["input"]["width"] == 854 and result["input"]["height"] == 480
    assert any("ours/spandrel" in line for line in result["summary"])
