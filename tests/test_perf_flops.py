"""bench/perf_flops.py (FLOPs and fraction of peak per generator) and bench/gpu.sh: the FLOP counter agrees with
the analytic count of a convolution, the summary names the slowest film stage, a quick run writes every field,
and the GPU script refuses in one line where there is no CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import perf_flops  # noqa: E402
import perf_summary  # noqa: E402
from perf_inference import count_flops  # noqa: E402


@pytest.mark.parametrize("cin,cout,k,h,w", [(3, 8, 3, 20, 24), (16, 4, 5, 9, 7), (7, 5, 1, 4, 33)])
def test_flop_counter_matches_the_analytic_count_of_a_conv(cin: int, cout: int, k: int, h: int, w: int) -> None:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)  # "same" padding: the output is h x w
    # one multiply and one add per weight per output pixel
    assert count_flops(conv, (torch.zeros(1, cin, h, w),)) == 2 * cin * cout * k * k * h * w


def _pipeline_speed(monkeypatch: pytest.MonkeyPatch):
    """bench/pipeline_speed.py, imported without leaving its OMP_NUM_THREADS default in this process's
    environment (monkeypatch restores it)."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    import pipeline_speed

    return pipeline_speed


def test_stage_generators_are_the_quickstarts_and_the_pipeline_bench_s(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline_speed = _pipeline_speed(monkeypatch)

    assert perf_flops.FILM_STAGES == pipeline_speed.QUICKSTART
    assert perf_flops.stage_generators() == {"restore": "restore_unet_small", "colorize": "colorize_unet_small",
                                             "upscale": "srresnet_small", "interpolate": "interp_small"}


def _small_result() -> dict:
    gens = {"restore_unet_small": ("restore", 0.20, 0.40), "colorize_unet_small": ("colorize", 0.05, 0.08),
            "srresnet_small": ("upscale", 1.50, 0.60), "rrdbnet": (None, 2.00, 0.70)}
    return {"device": "cpu", "torch_threads": 2, "machine": {"cpus": 2},
            "peak": {"mm_n": 2048, "mm_gflop_per_s": 90.0, "conv3x3_gflop_per_s": 180.0, "threads": 2},
            "pipeline_frame": {"height": 320, "width": 432},
            "generators": {n: {"stage": s, "timed_shape": [320, 432], "gflop_per_call": 1.0, "seconds_per_call": t,
                               "achieved_gflop_per_s": 100.0, "fraction_of_peak": f, "fraction_of_mm_peak": 2 * f}
                           for n, (s, t, f) in gens.items()},
            "slowest_stage": {"stage": "upscale", "generator": "srresnet_small", "seconds_per_call": 1.5,
                              "fraction_of_peak": 0.6},
            "lowest_fraction": {"generator": "colorize_unet_small", "stage": "colorize", "fraction_of_peak": 0.08}}


def test_summary_section_names_the_slowest_stage_and_lowest_fraction(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flops.json").write_text(json.dumps(_small_result()))
    monkeypatch.setattr(perf_summary, "RESULTS", tmp_path)
    text = perf_summary.write_summary().read_text()
    assert "## Where the time goes" in text
    assert "**Slowest film-pipeline stage: upscale** (srresnet_small" in text
    assert "**Lowest fraction of peak: colorize_unet_small** (colorize stage) at 8%" in text
    assert "| rrdbnet |  | 320x432 |" in text and "torch.mm 90.0 GFLOP/s" in text


def test_quick_run_writes_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setenv("BENCH_DEVICE", "cpu")
    out = tmp_path / "flops.json"
    names = ["restore_unet_small", "srresnet_small"]
    perf_flops.main(["--generators", *names, "--out", str(out)])
    r = json.loads(out.read_text())
    for key in ("machine", "device", "torch_threads", "command", "date", "peak", "flop_counter", "generators",
                "slowest_stage", "lowest_fraction", "stage_generators"):
        assert key in r, key
    assert {"gflop_per_s", "mm_gflop_per_s", "threads"} <= set(r["peak"]) and r["peak"]["gflop_per_s"] > 0
    assert list(r["generators"]) == names
    for g in r["generators"].values():
        assert g["gflop_per_call"] > 0 and g["seconds_per_call"] > 0 and 0 < g["fraction_of_peak"]
        # achieved = counted FLOPs / time, fraction = achieved / peak: recomputed from the stored figures
        assert g["achieved_gflop_per_s"] == pytest.approx(g["gflop_per_call"] / g["seconds_per_call"], rel=0.02)
        assert g["fraction_of_peak"] == pytest.approx(g["achieved_gflop_per_s"] / r["peak"]["gflop_per_s"], abs=2e-3)
    # the slowest stage is the one of the two with the longer forward
    slow = max(names, key=lambda n: r["generators"][n]["seconds_per_call"])
    assert r["slowest_stage"]["generator"] == slow and r["slowest_stage"]["stage"] == r["generators"][slow]["stage"]
    assert "--generators" in r["command"]


def test_gpu_script_refuses_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the script would run the GPU benches")
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode != 0
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]
    assert not (ROOT / "bench" / "results" / "gpu").exists() or not any((ROOT / "bench" / "results" / "gpu").iterdir())


def test_gpu_options_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    import perf_training

    gpu = perf_training.arg_parser().parse_args(["esrgan_x4", "--device", "cuda", "--bf16", "--channels-last",
                                                 "--out", "x.json"])
    assert (gpu.configs, gpu.device, gpu.bf16, gpu.channels_last, gpu.out) == (["esrgan_x4"], "cuda", True, True,
                                                                               Path("x.json"))
    cpu = perf_training.arg_parser().parse_args([])  # today's behaviour: every config, no switch, the usual JSON
    assert (cpu.configs, cpu.device, cpu.bf16, cpu.channels_last, cpu.out) == ([], None, False, False, None)
    ps = _pipeline_speed(monkeypatch).arg_parser()
    gpu = ps.parse_args(["--device", "cuda", "--size", "1920x1080", "--bf16", "--channels-last", "--out", "p.json"])
    assert (gpu.device, gpu.size, gpu.bf16, gpu.channels_last, gpu.out) == ("cuda", (1920, 1080), True, True,
                                                                            Path("p.json"))
    cpu = ps.parse_args([])
    assert (cpu.device, cpu.size, cpu.bf16, cpu.channels_last) == ("cpu", None, False, False)


def test_pipeline_size_option_refuses_bad_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    pipeline_speed = _pipeline_speed(monkeypatch)

    assert pipeline_speed._size("1920x1080") == (1920, 1080)
    for bad in ("1920", "0x1080", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            pipeline_speed._size(bad)
