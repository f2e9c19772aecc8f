"""Where the time goes: each generator's forward FLOPs, counted by torch's own counter
(`torch.utils.flop_counter.FlopCounterMode`), its forward time, and the achieved FLOP/s as a fraction of this
machine's measured peak; names the slowest stage of the film pipeline and the generator furthest from the peak.

    python bench/perf_flops.py [--generators NAME ...] [--out PATH]   # -> bench/results/perf/flops.json

Sizes: the four film-pipeline generators (the quickstarts' architectures, which the pipeline runs when no trained
export exists: restore, colorize, upscale, interpolate) at the newsreel's 432x320, the frame size
bench/pipeline_speed.py times; the other generators at the crop bench/perf_inference.py times them on (CPU) or
whole 480p frames (CUDA). Models and inputs are perf_inference's (random seeded weights; speed does not depend on
them). Time: median of the repeats under torch.inference_mode after one warm-up call. FLOPs: convolutions, matmuls
and attention as FlopCounterMode counts them (elementwise ops, interpolation and grid_sample are not counted, so
nets with many of them read lower than their real arithmetic rate). Peak: the faster of a 2048x2048 torch.mm and a
dense 3x3 convolution, best of 5 (perf_inference.matmul_peak), in this process with its threads.
Budget: about a minute on the 2-core CPU; BENCH_QUICK=1 (tiny crops, one call each) a few seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import RESULTS, ROOT, bench_device, quick, time_call  # noqa: E402
from perf_inference import CPU_CROP, CROPS, FRAME, build, count_flops, make_args, matmul_peak  # noqa: E402
from training import machine  # noqa: E402

from restoregan.atomic import atomic_write  # noqa: E402

PIPELINE_FRAME = (320, 432)  # (height, width) of the newsreel clip bench/pipeline_speed.py times the stages on
# film stage -> the quickstart whose generator it runs (bench/pipeline_speed.py's QUICKSTART; a test checks that)
FILM_STAGES = {"restore": "film_restore_quickstart", "colorize": "colorize_quickstart", "upscale": "sr_quickstart",
               "interpolate": "interp_quickstart"}
GENERATORS = sorted(p.stem for p in (ROOT / "conf" / "generator").glob("*.yaml"))


def quickstart_generator(experiment: str) -> str:
    """The generator conf/experiment/<experiment>.yaml selects (its `override /generator` default)."""
    for entry in OmegaConf.load(ROOT / "conf" / "experiment" / f"{experiment}.yaml").get("defaults", []):
        if isinstance(entry, dict) or OmegaConf.is_dict(entry):
            for key, value in entry.items():
                if key.strip() == "override /generator":
                    return str(value)
    raise ValueError(f"conf/experiment/{experiment}.yaml: no `override /generator` in its defaults")


def stage_generators() -> dict[str, str]:
    return {stage: quickstart_generator(exp) for stage, exp in FILM_STAGES.items()}


def timed_shape(name: str, stage: str | None, device: torch.device) -> tuple[int, int]:
    if quick():
        return CROPS[0]
    if stage is not None:
        return PIPELINE_FRAME
    crop = None if device.type == "cuda" else CPU_CROP.get(name)
    return FRAME if crop is None else CROPS[crop]


def measure(name: str, stage: str | None, device: torch.device, peak: dict) -> dict:
    net = build(name, device)
    shape = timed_shape(name, stage, device)
    args = make_args(name, 1, shape, device)
    flops = count_flops(net, args)
    with torch.inference_mode():
        t = time_call(lambda: net(*args), device, warmup=1, repeats=3)
    achieved = flops / t["seconds"] / 1e9
    row = {"stage": stage, "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
           "timed_shape": list(shape), "gflop_per_call": round(flops / 1e9, 3),
           "seconds_per_call": round(t["seconds"], 4), "repeats": t["repeats"],
           "achieved_gflop_per_s": round(achieved, 1), "fraction_of_peak": round(achieved / peak["gflop_per_s"], 3),
           "fraction_of_mm_peak": round(achieved / peak["mm_gflop_per_s"], 3)}
    print(f"{name:20s} {str(stage or ''):12s} {'x'.join(map(str, shape)):>8s} {row['gflop_per_call']:9.2f} GFLOP "
          f"{row['seconds_per_call']:8.3f} s {row['achieved_gflop_per_s']:7.1f} GFLOP/s "
          f"{100 * row['fraction_of_peak']:5.1f}% of peak", flush=True)
    return row


def run(names: list[str], device: torch.device) -> dict:
    start = time.perf_counter()
    peak = matmul_peak(device, torch.float32)
    peak["threads"] = torch.get_num_threads()
    print(f"peak: torch.mm {peak['mm_gflop_per_s']} GFLOP/s, conv3x3 {peak['conv3x3_gflop_per_s']} GFLOP/s, "
          f"{peak['threads']} threads", flush=True)
    stages = stage_generators()
    by_generator = {g: s for s, g in stages.items()}
    generators = {name: measure(name, by_generator.get(name), device, peak) for name in names}
    timed_stages = {s: g for s, g in stages.items() if g in generators}
    result: dict = {
        "peak": peak,
        "flop_counter": "torch.utils.flop_counter.FlopCounterMode on the meta device (convolutions, matmuls, "
                        "attention; elementwise ops, interpolation and grid_sample not counted)",
        "pipeline_frame": {"height": PIPELINE_FRAME[0], "width": PIPELINE_FRAME[1]},
        "stage_generators": stages, "generators": generators,
    }
    if timed_stages:
        slow = max(timed_stages, key=lambda s: generators[timed_stages[s]]["seconds_per_call"])
        g = generators[timed_stages[slow]]
        result["slowest_stage"] = {"stage": slow, "generator": timed_stages[slow],
                                   "seconds_per_call": g["seconds_per_call"], "timed_shape": g["timed_shape"],
                                   "fraction_of_peak": g["fraction_of_peak"]}
    low = min(generators, key=lambda n: generators[n]["fraction_of_peak"])
    result["lowest_fraction"] = {"generator": low, "stage": generators[low]["stage"],
                                 "fraction_of_peak": generators[low]["fraction_of_peak"]}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def write(result: dict, out: Path, command: list[str]) -> Path:
    """The JSON whole (atomically), with the machine, device, threads, command and date like the other perf
    results."""
    payload = {"bench": "flops", "machine": machine(), "device": str(bench_device()),
               "torch_threads": torch.get_num_threads(), "quick": quick(), "command": " ".join(command),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    text = json.dumps(payload, indent=2)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text + "\n"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, default=GENERATORS,
                        help="conf/generator names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "flops.json", help="the JSON to write")
    opts = parser.parse_args(argv)
    result = run(opts.generators, bench_device())
    path = write(result, opts.out, ["python", "bench/perf_flops.py", *(sys.argv[1:] if argv is None else argv)])
    s, low = result.get("slowest_stage"), result["lowest_fraction"]
    if s:
        size = "x".join(map(str, s["timed_shape"][::-1]))
        print(f"slowest film stage: {s['stage']} ({s['generator']}, {s['seconds_per_call']} s per {size} frame)")
    print(f"lowest fraction of peak: {low['generator']} {100 * low['fraction_of_peak']:.1f}%; wrote {path}")
    return result


if __name__ == "__main__":
    main()
