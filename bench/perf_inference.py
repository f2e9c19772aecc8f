"""Inference speed: frames/s and peak memory of every generator at 480p input (854x480, landscape 16:9); our
RRDBNet against spandrel's on the same weights; achieved FLOP/s as a fraction of this machine's matmul peak; each
speed switch on vs off (channels_last, grad mode, autocast, infer.py's defaults against exact=true, torch.compile,
batching, tile size and overlap).

    python bench/perf_inference.py [--only generators spandrel switches]  # -> bench/results/perf/inference.json

Budget: a normal run takes at most 4 minutes on the 2-core CPU (about 2 minutes measured with 1 thread on a
shared machine, torch.compile's cold compile included); BENCH_QUICK=1 (tiny crops, one timed call, no
torch.compile) under 40 s (about 25 s measured).

SR x4 generators are far too slow on a 2-core CPU for whole 480p frames within the budget, so on CPU the slow
generators run on a crop and their time is scaled by pixels (`extrapolated: true`, `timed_shape`,
`timed_pixels`). Convolution cost is linear in pixels; each extrapolated generator is also timed on a second,
smaller crop to check that (`linearity.time_ratio_over_pixel_ratio`, 1.0 = linear; above 1, larger images
cost more per pixel, as caches overflow, and the extrapolated frames/s is that much optimistic). On CUDA every
generator runs whole frames. Weights are random (seeded): speed does not depend on them; tiling differences do
(random trunks see little of distant pixels, so `max_abs_diff_vs_untiled` is smaller than a trained net's).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import ROOT, PeakMemory, bench_device, quick, sync, time_call, write_result  # noqa: E402

from restoregan.gans.checkpoint import save_export  # noqa: E402
from restoregan.inference.tiled import apply_tiled, prepare_for_inference  # noqa: E402
from restoregan.tasks.sr import SuperResolutionTask  # noqa: E402

FRAME = (480, 854)  # 480p input, landscape 16:9
FRAME_PIXELS = FRAME[0] * FRAME[1]
# crops are multiples of 32 (colorize_unet pads to 32, interp to 16), so padding does not inflate the crop's cost
CROPS = [(32, 64), (64, 96), (128, 224), (224, 416)]
# generator -> index into CROPS of the crop timed on CPU (None: the whole frame); about 1-2.5 s per call, 1 thread
CPU_CROP = {
    "rrdbnet": 1, "rrdbnet_small": 3, "srresnet": 2, "srresnet_small": 3, "colorize_unet": 3,
    "colorize_unet_small": None, "interp": 3, "interp_small": None, "restore_unet": 3, "restore_unet_small": None,
}
SMALL = ["rrdbnet_small", "srresnet_small", "restore_unet_small", "colorize_unet_small", "interp_small"]
REFERENCE = "rrdbnet_small"  # the switches' model: SR x4, the same architecture as the spandrel comparison
COMPILE_MODEL = "restore_unet_small"  # compile is for long runs of same-size frames: a video model
COMPILE_TIMEOUT_S = 90


# --- models and inputs ---------------------------------------------------------------------------
def build(name: str, device: torch.device) -> nn.Module:
    """conf/generator/<name>.yaml at x4, random seeded weights, no ImageNet download, in eval mode."""
    cfg = OmegaConf.create({"task": {"scale": 4}, "pretrained_backbones": False,
                            "generator": OmegaConf.load(ROOT / "conf" / "generator" / f"{name}.yaml")})
    torch.manual_seed(0)
    net = instantiate(cfg.generator)
    # zero-initialised output heads (residual learning) make a fresh net the identity; a trained one is not,
    # and precision figures (bf16 PSNR) would otherwise read as exact
    for pname, p in net.named_parameters():
        if not pname.endswith("bias") and not p.detach().any():
            nn.init.normal_(p, 0.0, 0.02)
    net.to(device)
    # BatchNorm's initial running stats (mean 0, var 1) leave a random ResNet's activations unnormalised in eval
    # mode (colorize outputs reach 1e11); one train-mode pass sets them as training would
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
        with torch.no_grad():
            net.train()(*make_args(name, 2, CROPS[1], device))
    return net.eval()


def make_args(name: str, batch: int, hw: tuple[int, int], device: torch.device) -> tuple:
    """A forward's arguments: RGB frames; luminance for colorize; two frames and t = 0.5 for interp."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, *hw, generator=gen).to(device)
    if name.startswith("colorize"):
        return (x[:, :1].contiguous(),)
    if name.startswith("interp"):
        return (x, x.roll(3, dims=-1).contiguous(), 0.5)
    return (x,)


def count_flops(net: nn.Module, args: tuple) -> int:
    """FLOPs of one forward (convs, matmuls, attention; elementwise ops and grid_sample are not counted), on
    the meta device: exact for any size at no compute cost."""
    meta = copy.deepcopy(net).to("meta")
    margs = tuple(a.to("meta") if isinstance(a, Tensor) else a for a in args)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*margs)
    return counter.get_total_flops()


def _trim_heap() -> None:
    """Give freed heap memory back to the OS, so the next PeakMemory block (RSS-based on CPU) counts what it
    allocates instead of reusing pages a previous model left behind."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def peak_of(fn: Callable[[], object], device: torch.device) -> float | None:
    _trim_heap()
    with PeakMemory(device) as peak:
        fn()
    return peak.mib


def psnr(a: Tensor, b: Tensor) -> float | None:
    """PSNR of `a` against `b` at peak 1 (None when identical)."""
    mse = (a.float() - b.float()).pow(2).mean().item()
    return round(10 * math.log10(1 / mse), 2) if mse > 0 else None


def max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048) -> dict:
    """Best GFLOP/s of dense products on this machine, the roofline for the generators' convs: an n x n
    torch.mm, and a 3x3 conv 256 -> 256 channels on 64x64 (oneDNN's implicit GEMM). Both, because torch.mm
    goes through MKL, which on AMD CPUs takes a slower path than oneDNN (50-110 vs 110-240 GFLOP/s fp32 per
    core measured here); the peak is the faster. Best of the repeats, not the median: a peak."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(device, dtype) for _ in range(2))
    x = torch.randn(1, 256, 64, 64, generator=gen).to(device, dtype)
    w = torch.randn(256, 256, 3, 3, generator=gen).to(device, dtype)
    mm_s = time_call(lambda: torch.mm(a, b), device, warmup=1, repeats=5)["min_seconds"]
    conv_s = time_call(lambda: F.conv2d(x, w, padding=1), device, warmup=1, repeats=5)["min_seconds"]
    mm, conv = 2 * n**3 / mm_s / 1e9, 2 * 256 * 256 * 9 * 64 * 64 / conv_s / 1e9
    return {"dtype": str(dtype).replace("torch.", ""), "mm_n": n, "mm_gflop_per_s": round(mm, 1),
            "conv3x3_gflop_per_s": round(conv, 1), "gflop_per_s": round(max(mm, conv), 1),
            "source": "torch.mm" if mm >= conv else "conv3x3 (oneDNN)"}


def _seconds(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3) -> float:
    return time_call(fn, device, warmup=warmup, repeats=repeats)["seconds"]


# --- 1. every generator at 480p ------------------------------------------------------------------
def bench_generators(device: torch.device, peaks: dict) -> dict:
    out = {}
    for name, crop in CPU_CROP.items():
        net = build(name, device)
        if device.type == "cuda":
            crop = None
        elif quick():
            crop = 0
        shape = FRAME if crop is None else CROPS[crop]
        args = make_args(name, 1, shape, device)
        with torch.inference_mode():
            peak = peak_of(lambda: net(*args), device)  # also the warm-up call
            seconds = _seconds(lambda: net(*args), device, warmup=0, repeats=2)
            linearity, peak_480p = None, peak
            if crop is not None and crop > 0 and not quick():  # a second, smaller crop: is time linear?
                small = CROPS[crop - 1]
                sargs = make_args(name, 1, small, device)
                small_peak = peak_of(lambda: net(*sargs), device)
                small_s = _seconds(lambda: net(*sargs), device, warmup=0, repeats=1)
                px_ratio = (shape[0] * shape[1]) / (small[0] * small[1])
                linearity = {"small_shape": list(small), "pixel_ratio": round(px_ratio, 3),
                             "time_ratio": round(seconds / small_s, 3),
                             "time_ratio_over_pixel_ratio": round(seconds / small_s / px_ratio, 3)}
                # memory: straight line through the two crops (weights and workspace are the intercept)
                slope = (peak - small_peak) / (shape[0] * shape[1] - small[0] * small[1])
                peak_480p = round(peak + slope * (FRAME_PIXELS - shape[0] * shape[1]), 1) if slope > 0 else None
        timed_px = shape[0] * shape[1]
        flops_timed, flops_frame = count_flops(net, args), count_flops(net, make_args(name, 1, FRAME, device))
        s_frame = seconds * FRAME_PIXELS / timed_px
        achieved = flops_timed / seconds
        out[name] = {
            "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
            "frames_per_s": round(1 / s_frame, 4), "seconds_per_frame": round(s_frame, 3),
            "extrapolated": crop is not None, "timed_shape": list(shape), "timed_pixels": timed_px,
            "seconds_per_timed_call": round(seconds, 4),
            "peak_mib_timed_call": peak,
            "peak_mib_480p": peak_480p if crop is not None else peak,
            "peak_mib_480p_how": ("measured" if crop is None else
                                  "linear fit through the two timed crops" if peak_480p is not None else
                                  "not estimated (quick run or non-increasing memory)"),
            "gflop_per_frame": round(flops_frame / 1e9, 2),
            "flop_ratio_frame_over_timed": round(flops_frame / flops_timed, 3),
            "achieved_gflop_per_s": round(achieved / 1e9, 1),
            "fraction_of_matmul_peak": round(achieved / 1e9 / peaks["float32"]["gflop_per_s"], 3),
            "fraction_of_torch_mm": round(achieved / 1e9 / peaks["float32"]["mm_gflop_per_s"], 3),
            "linearity": linearity,
        }
    return out


# --- 2. our RRDBNet against spandrel's on the same weights -----------------------------------------
def bench_spandrel(device: torch.device) -> dict:
    import spandrel

    net = build("rrdbnet", device)  # default ESRGAN sizes: 23 RRDB, 64 features, growth 32
    with tempfile.TemporaryDirectory() as tmp:
        path = save_export(Path(tmp) / "rrdbnet", net, {"_target_": "restoregan.gans.rrdbnet.RRDBNet"},
                           {"task": SuperResolutionTask(4).config(), "scale": 4})
        descriptor = spandrel.ModelLoader(device).load_from_file(path)
    theirs = descriptor.model.eval()
    side = 16 if quick() else 64
    x = make_args("rrdbnet", 1, (side, side), device)[0]
    ours_cl = prepare_for_inference(copy.deepcopy(net), channels_last=True)
    fns = {"ours": lambda: net(x), "spandrel": lambda: theirs(x), "ours_channels_last": lambda: ours_cl(x)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        a, b, c = net(x), theirs(x), ours_cl(x)  # also the warm-up
        # interleaved rounds: a neighbour stealing a core slows all three alike instead of one of them
        for _ in range(1 if quick() else 3):
            for k, fn in fns.items():
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                times[k].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {
        "spandrel_version": spandrel.__version__, "spandrel_architecture": descriptor.architecture.name,
        "input_shape": list(x.shape), "rounds": len(times["ours"]),
        "ours_seconds_per_call": round(med["ours"], 4), "spandrel_seconds_per_call": round(med["spandrel"], 4),
        "ratio_ours_over_spandrel": round(med["ours"] / med["spandrel"], 3),
        "max_abs_diff": max_diff(a, b), "bit_identical": bool(torch.equal(a, b)),
        "ours_channels_last_seconds_per_call": round(med["ours_channels_last"], 4),
        "ratio_ours_channels_last_over_spandrel": round(med["ours_channels_last"] / med["spandrel"], 3),
        "channels_last_max_abs_diff": max_diff(c, b),
    }


# --- 4. the switches --------------------------------------------------------------------------
def bench_channels_last(device: torch.device) -> dict:
    """Model (and input) in channels_last vs the default NCHW, every generator on a small crop."""
    out = {}
    for name in SMALL if quick() else CPU_CROP:
        shape = CROPS[0] if quick() or name == "rrdbnet" else CROPS[1]
        net = build(name, device)
        args = make_args(name, 1, shape, device)
        cl_args = tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, Tensor) else a for a in args)
        with torch.inference_mode():
            ref = net(*args)
            off = _seconds(lambda: net(*args), device, warmup=0, repeats=2)
            prepare_for_inference(net, channels_last=True)
            on = _seconds(lambda: net(*cl_args), device, repeats=2)
            diff = max_diff(net(*cl_args), ref)
        out[name] = {"shape": list(shape), "off_seconds": round(off, 4), "on_seconds": round(on, 4),
                     "speedup": round(off / on, 3), "max_abs_diff": diff}
    return out


def bench_grad_modes(device: torch.device) -> dict:
    net = build(REFERENCE, device)
    x = make_args(REFERENCE, 1, CROPS[0] if quick() else CROPS[2], device)[0]
    modes = {"autograd": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    secs = {}
    for mode, ctx in modes.items():
        def call(ctx: Callable = ctx) -> None:
            with ctx():
                net(x)
        secs[mode] = _seconds(call, device, repeats=2)
    return {"model": REFERENCE, "shape": list(x.shape[-2:]),
            **{f"{k}_seconds": round(v, 4) for k, v in secs.items()},
            "speedup_inference_mode_over_autograd": round(secs["autograd"] / secs["inference_mode"], 3),
            "speedup_inference_mode_over_no_grad": round(secs["no_grad"] / secs["inference_mode"], 3)}


def _fp32_reference(name: str, shape: tuple[int, int],
                    device: torch.device) -> tuple[nn.Module, tuple, Tensor, float]:
    """The generator, its input, its fp32 output and the seconds of one fp32 call: what a faster path is compared
    with."""
    net = build(name, device)
    args = make_args(name, 1, shape, device)
    with torch.inference_mode():
        ref = net(*args)
        return net, args, ref, _seconds(lambda: net(*args), device, warmup=0, repeats=2)


def bench_autocast(device: torch.device, peaks: dict) -> dict:
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16} if device.type == "cuda" else {"bf16": torch.bfloat16}
    shape = CROPS[0] if quick() else CROPS[2]
    out: dict = {"shape": list(shape), "psnr_note": "PSNR (peak 1) of the autocast output against fp32's"}
    if device.type != "cuda":
        out["fp16"] = None
        out["fp16_reason"] = "GPU-only: fp16 autocast is CUDA-only in infer.py (half); no CUDA on this machine"
    for name in SMALL:
        net, args, ref, fp32 = _fp32_reference(name, shape, device)
        with torch.inference_mode():
            row = {"fp32_seconds": round(fp32, 4)}
            for label, dtype in dtypes.items():
                def call(dtype: torch.dtype = dtype) -> Tensor:
                    with torch.autocast(device.type, dtype=dtype):
                        return net(*args)
                s = _seconds(call, device, repeats=2)
                y = call()
                row[label] = {"seconds": round(s, 4), "speedup": round(fp32 / s, 3), "psnr_db": psnr(y, ref),
                              "max_abs_diff": max_diff(y, ref)}
                if name == REFERENCE and label == "bf16":
                    achieved = count_flops(net, args) / s / 1e9
                    row[label]["achieved_gflop_per_s"] = round(achieved, 1)
                    row[label]["fraction_of_bf16_matmul_peak"] = round(achieved / peaks["bfloat16"]["gflop_per_s"], 3)
        out[name] = row
    return out


def bench_defaults(device: torch.device) -> dict:
    """infer.py's defaults (bf16 and channels_last `auto`, restoregan.inference.speed) against `exact=true`, each
    quickstart-sized generator: what auto chose on this device, seconds both ways, the default output's PSNR
    against the exact one, and whether it is within the tolerance auto promises."""
    from restoregan.inference.speed import FAST_TOLERANCE_DB, resolve_switches

    shape = CROPS[0] if quick() else CROPS[2]
    auto = OmegaConf.create({"bf16": "auto", "channels_last": "auto", "compile": False, "exact": False})
    out: dict = {"shape": list(shape), "tolerance_db": FAST_TOLERANCE_DB, "exact_switch": "infer.py exact=true",
                 "psnr_note": "PSNR (peak 1) of the default path's output against exact fp32's; null = identical"}
    for name in SMALL:
        net, args, ref, exact = _fp32_reference(name, shape, device)
        with torch.inference_mode():
            switches, notes = resolve_switches(auto, net, device, 1 if name.startswith("colorize") else 3, name)
            fast = prepare_for_inference(copy.deepcopy(net), switches.channels_last, False, switches.bf16)
            default = _seconds(lambda: fast(*args), device, repeats=2)
            db = psnr(fast(*args), ref)
        out[name] = {"chosen": switches.on(), "exact_seconds": round(exact, 4), "default_seconds": round(default, 4),
                     "speedup": round(exact / default, 3), "psnr_db": db,
                     "within_tolerance": db is None or db >= FAST_TOLERANCE_DB, "notes": notes}
    return out


def bench_batching(device: torch.device) -> dict:
    """Frames per forward in video inference (`video.batch` of frame-by-frame stages; interp runs one pair at a
    time)."""
    shape, n = (CROPS[0], 4) if quick() else (CROPS[2], 8)
    out: dict = {"shape": list(shape), "frames": n}
    for name in ("restore_unet_small", "interp_small"):
        net = build(name, device)
        row = {}
        for batch in (1, 4, 8):
            if batch > n:
                continue
            args = make_args(name, batch, shape, device)

            def run_all(args: tuple = args, batch: int = batch) -> None:
                for _ in range(n // batch):
                    net(*args)
            with torch.inference_mode():
                row[f"batch_{batch}_frames_per_s"] = round(n / _seconds(run_all, device, repeats=1), 2)
        row["speedup_batch_max_over_1"] = round(row[f"batch_{min(8, n)}_frames_per_s"] / row["batch_1_frames_per_s"], 3)
        out[name] = row
    return out


def bench_tiling(device: torch.device) -> dict:
    """restoregan.inference.tiled.apply_tiled: tile size (at overlap 32, infer.py's default) and overlap (at tile
    128) against one untiled pass. One timed call per setting (its output gives the difference too)."""
    net = build(REFERENCE, device)
    shape = CROPS[1] if quick() else CROPS[3]
    x = make_args(REFERENCE, 1, shape, device)[0]
    tiles, overlaps, at = ([32, 64], [8, 16], 32) if quick() else ([64, 128, 256], [8, 16, 64], 128)

    def timed(tile: int | None, overlap: int) -> tuple[float, Tensor]:
        sync(device)
        t0 = time.perf_counter()
        y = apply_tiled(net, x, 4, tile=tile, overlap=overlap)
        sync(device)
        return time.perf_counter() - t0, y

    timed(None, 0)  # warm-up
    base, untiled = timed(None, 0)
    rows: dict = {"untiled": {"seconds": round(base, 4)}}
    for tile, overlap in [(t, 32) for t in tiles] + [(at, o) for o in overlaps]:
        s, y = timed(tile, overlap)
        rows[f"tile_{tile}_overlap_{overlap}"] = {"seconds": round(s, 4), "slowdown_vs_untiled": round(s / base, 3),
                                                  "max_abs_diff_vs_untiled": max_diff(y, untiled)}
    return {"model": REFERENCE, "lr_shape": list(shape), "note": "tile and overlap in LR (input) pixels", **rows}


def bench_compile(device: torch.device) -> dict:
    """torch.compile in a child process (fresh inductor cache, so compile time is a first run's), killed after
    COMPILE_TIMEOUT_S: a compile that hangs or fails is recorded, the rest of the bench goes on."""
    if quick():
        return {"skipped": "BENCH_QUICK=1 (a cold compile takes tens of seconds)"}
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "BENCH_DEVICE": str(device)}
    with tempfile.TemporaryDirectory() as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            done = subprocess.run([sys.executable, __file__, "--compile-probe"], env=env, capture_output=True,
                                  text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"status": f"gave up: compile and first call took over {COMPILE_TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"status": "failed", "error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return {"status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def compile_probe() -> None:
    """The child of bench_compile: eager vs compiled COMPILE_MODEL, one JSON line on stdout."""
    device = bench_device()
    net = build(COMPILE_MODEL, device)
    args = make_args(COMPILE_MODEL, 1, CROPS[2], device)
    with torch.inference_mode():
        ref = net(*args)
        eager = _seconds(lambda: net(*args), device, warmup=0)
        prepare_for_inference(net, compile=True)
        t0 = time.perf_counter()
        y = net(*args)
        sync(device)
        first = time.perf_counter() - t0
        compiled = _seconds(lambda: net(*args), device, warmup=0)
    print(json.dumps({"model": COMPILE_MODEL, "shape": list(CROPS[2]), "first_call_seconds": round(first, 2),
                      "compile_seconds": round(first - eager, 2), "eager_seconds": round(eager, 4),
                      "compiled_seconds": round(compiled, 4), "speedup": round(eager / compiled, 3),
                      "max_abs_diff": max_diff(y, ref)}))


# --- report ------------------------------------------------------------------------------------
def summary(result: dict) -> list[str]:
    lines = []
    for name, g in result.get("generators", {}).items():
        how = (f"extrapolated from a {g['timed_shape'][0]}x{g['timed_shape'][1]} crop" if g["extrapolated"]
               else "whole frames")
        if g["linearity"]:
            how += f"; time per pixel {g['linearity']['time_ratio_over_pixel_ratio']}x the smaller crop's"
        lines.append(f"{name:20s} {g['frames_per_s']:9.4f} frames/s  {g['peak_mib_480p'] or float('nan'):8.1f} MiB"
                     f"  {g['gflop_per_frame']:8.1f} GFLOP/frame  {100 * g['fraction_of_matmul_peak']:5.1f}% of mm peak"
                     f"  ({how})")
    if "spandrel" in result:
        s = result["spandrel"]
        lines.append(f"RRDBNet ours/spandrel {s['ratio_ours_over_spandrel']} (channels_last "
                     f"{s['ratio_ours_channels_last_over_spandrel']}), max |diff| {s['max_abs_diff']:.2g}, "
                     f"input {s['input_shape']}")
    sw = result.get("switches", {})
    if sw:
        cl = sw["channels_last"]
        lines.append("channels_last speedup: " + ", ".join(f"{k} {v['speedup']}" for k, v in cl.items()))
        g = sw["grad_mode"]
        lines.append(f"inference_mode vs autograd {g['speedup_inference_mode_over_autograd']}, vs no_grad "
                     f"{g['speedup_inference_mode_over_no_grad']}")
        ac = sw["autocast"]
        lines.append("bf16 autocast speedup (PSNR dB): " + ", ".join(
            f"{k} {v['bf16']['speedup']} ({v['bf16']['psnr_db']})" for k, v in ac.items() if k in SMALL))
        if "defaults" in sw:
            d = sw["defaults"]
            lines.append("infer.py defaults vs exact=true, speedup (PSNR dB, switches): " + ", ".join(
                f"{k} {v['speedup']} ({v['psnr_db']}, {'+'.join(v['chosen']) or 'none'})" for k, v in d.items()
                if k in SMALL))
        c = sw["compile"]
        lines.append("torch.compile: " + (f"{c['speedup']}x after {c['compile_seconds']} s compiling"
                                          if c.get("status") == "ok" else str(c.get("skipped") or c)))
        lines.append("batching (frames/s, 1/4/8): " + ", ".join(
            f"{k} " + "/".join(str(v2) for k2, v2 in v.items() if k2.endswith("frames_per_s"))
            for k, v in sw["batching"].items() if isinstance(v, dict)))
        t = sw["tiling"]
        lines.append("tiling slowdown (max |diff|): " + ", ".join(
            f"{k.removeprefix('tile_')} {v['slowdown_vs_untiled']} ({v['max_abs_diff_vs_untiled']:.1g})"
            for k, v in t.items() if k.startswith("tile_")))
    return lines


SECTIONS = ("generators", "spandrel", "switches")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.compile_probe:
        compile_probe()
        return {}
    device = bench_device()
    start = time.perf_counter()
    peaks = {"float32": matmul_peak(device, torch.float32), "bfloat16": matmul_peak(device, torch.bfloat16)}
    result: dict = {
        "input": {"height": FRAME[0], "width": FRAME[1], "pixels": FRAME_PIXELS,
                  "note": "480p input = 854x480 (landscape 16:9); x4 SR generators output 3416x1920; colorize "
                          "takes its luminance, interp two such frames and t = 0.5 (one output frame per call)"},
        "matmul_peak": peaks,
    }
    sections: dict[str, Callable[[], dict]] = {
        "generators": lambda: bench_generators(device, peaks), "spandrel": lambda: bench_spandrel(device),
        "channels_last": lambda: bench_channels_last(device), "grad_mode": lambda: bench_grad_modes(device),
        "autocast": lambda: bench_autocast(device, peaks), "defaults": lambda: bench_defaults(device),
        "compile": lambda: bench_compile(device),
        "batching": lambda: bench_batching(device), "tiling": lambda: bench_tiling(device),
    }
    wall = {}
    for key, fn in sections.items():
        if (key if key in SECTIONS else "switches") in opts.only:
            t0 = time.perf_counter()
            value = fn()
            wall[key] = round(time.perf_counter() - t0, 1)
            (result if key in SECTIONS else result.setdefault("switches", {}))[key] = value
            print(f"{key}: {wall[key]} s", flush=True)
    result["section_seconds"] = wall
    if "switches" in result:
        result["switches"]["where_they_apply"] = {
            "channels_last": "CPU (oneDNN) and CUDA (cuDNN); infer.py channels_last=auto (the default) or true",
            "defaults": "infer.py bf16=auto channels_last=auto (restoregan.inference.speed); exact=true for fp32",
            "grad_mode": "both; infer.py already runs under inference_mode / no_grad",
            "autocast": "bf16: CPU (fast with AVX512-BF16/AMX) and CUDA, infer.py bf16=auto/true; fp16: CUDA only "
                        "(infer.py half), measured only when CUDA is present",
            "compile": "both; opt-in, infer.py compile=true",
            "batching": "both; not an option: the video tasks run one frame (or one pair) per forward",
            "tiling": "both; infer.py tile / tile_overlap",
        }
    result["summary"] = summary(result)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    print("\n".join(result["summary"]))
    write_result("inference", result)
    return result


if __name__ == "__main__":
    main()
