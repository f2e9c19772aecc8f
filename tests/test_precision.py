"""`trainer.precision: fast`: bf16-mixed only where the device does bf16 natively, 32-true elsewhere; other values
pass through to Lightning; the film quickstarts use it and still export fp32 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import restoregan.training.precision as precision
from restoregan.training.precision import resolve_precision
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", 32])
def test_other_values_pass_through(value) -> None:
    assert resolve_precision(value, "cpu") == value


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_fast_follows_the_hardware(native: bool, expected: str, monkeypatch) -> None:
    asked = []
    monkeypatch.setattr(precision, "native_bf16", lambda device: asked.append(device) or native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("fast", "auto") == expected
    assert resolve_precision("fast", "cpu") == expected
    assert asked == ["cpu", "cpu"]  # auto without CUDA is the CPU
    assert resolve_precision("fast", "mps") == "32-true"  # no bf16 claim for devices it does not know


def test_auto_with_cuda_asks_the_gpu(monkeypatch) -> None:
    asked = []
    monkeypatch.setattr(precision, "native_bf16", lambda device: asked.append(device) or True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_precision("fast", "auto") == "bf16-mixed" and asked == ["cuda"]
    assert resolve_precision("fast", "cpu") == "bf16-mixed" and asked == ["cuda", "cpu"]


@pytest.mark.parametrize("caps, expected", [({"avx512": True}, False), ({"avx512": True, "avx512_bf16": True}, True),
                                            ({"amx_bf16": True}, True), ({}, False)])
def test_an_avx512_cpu_without_bf16_units_is_not_native(caps: dict, expected: bool, monkeypatch) -> None:
    """oneDNN calls every AVX512 CPU bf16-capable (it emulates); only AVX512-BF16 or AMX count here."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert precision.native_bf16("cpu") is expected


def test_cpu_answer_matches_the_cpu_flags() -> None:
    """An independent reading of the same fact: oneDNN's bf16 kernels need AVX512-BF16 or AMX (Linux flags)."""
    flags = Path("/proc/cpuinfo")
    if not flags.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    text = flags.read_text()
    hardware = "avx512_bf16" in text or "amx_bf16" in text
    assert precision.native_bf16("cpu") == hardware


@pytest.mark.parametrize("experiment", ["film_restore_quickstart", "film_restore_video_quickstart"])
def test_film_quickstarts_train_fast_and_export_fp32(experiment: str, tmp_path: Path, monkeypatch) -> None:
    cfg = compose_train(tiny_overrides(tmp_path, experiment))
    assert cfg.trainer.precision == "fast"
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    overrides = tiny_overrides(tmp_path, experiment) + [
        "data.train.optional_sources=[]", "data.train.cache=false", "pretrain_iters=1", "d_pretrain_iters=0",
        "gan_iters=1", "val_every=2"]
    if experiment == "film_restore_video_quickstart":
        overrides += ["data.train.frames=3", "generator.num_feat=8", "generator.num_blocks=1"]
    result = train(compose_train(overrides))
    assert result.module.trainer.precision == "bf16-mixed"
    weights = load_file(f"{result.export}.safetensors")
    assert weights and all(w.dtype == torch.float32 for w in weights.values())
