"""infer.py's speed switches resolved for one loaded model: `auto` takes the fast path where it is measured to pay and
to give at least FAST_TOLERANCE_DB PSNR against fp32's output; `exact=true` runs fp32, NCHW, uncompiled, as trained.

- bf16 auto: bfloat16 autocast on a CPU that computes bf16 natively (AVX512-BF16 or AMX), off elsewhere (emulated
  bf16 is slower than fp32; on CUDA, `half=auto`'s fp16 is already the fast path). Each model is checked once at
  load: its output on a fixed seeded probe under bf16 against fp32; below FAST_TOLERANCE_DB, or when the probe fails
  in bf16, it runs fp32, with a note. The film pipeline records each stage's choice in its resume hash.
- channels_last auto: NHWC weights for the project's own generators on CPU or CUDA (faster for each of them in
  bench/perf_inference.py's last run, bench/results/perf/), unless a net says it is slower so
  (`channels_last_on_cpu = False`, none does now); community models keep their layout (not measured).
- compile stays opt-in: it needs a C++ compiler on CPU and 15-50 s per frame size before the first frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from restoregan.gans.onnx_export import example_inputs
from restoregan.gans.temporal_restorer import takes_clips
from restoregan.training.precision import native_bf16

FAST_TOLERANCE_DB = 50.0  # PSNR (peak 1) of a fast output against fp32's: 8-bit rounding alone is ~59 dB
PROBE_SIDE = 48  # px: the probe's side for nets without their own example input
PROBE_FRAMES = 3  # frames of the probe clip for clip nets without their own example input


@dataclass(frozen=True)
class Switches:
    channels_last: bool = False
    compile: bool = False
    bf16: bool = False

    def on(self) -> list[str]:
        return [k for k, v in asdict(self).items() if v]


def check_setting(name: str, value: Any, auto: bool = True) -> None:
    """auto (where it is allowed), true, false or null (off), refused in one line otherwise."""
    if not (value is None or value is True or value is False or (auto and value == "auto")):
        raise ValueError(f"{name}={value}: expected {'auto, ' if auto else ''}true or false")


def wants_bf16(setting: Any, device: torch.device) -> bool:
    """The bf16 request before the model's own check: auto = a CPU that does bf16 natively."""
    check_setting("bf16", setting)
    if setting == "auto":
        return device.type == "cpu" and native_bf16("cpu")
    return bool(setting)


def wants_channels_last(setting: Any, net: nn.Module, device: torch.device, own: bool = True) -> bool:
    """own: one of the project's generators (measured by bench/perf_inference.py), not a community model."""
    check_setting("channels_last", setting)
    if setting == "auto":
        if device.type == "cuda":
            return own
        return own and device.type == "cpu" and bool(getattr(net, "channels_last_on_cpu", True))
    return bool(setting)


def probe_inputs(net: nn.Module, in_channels: int) -> tuple[Any, ...]:
    """A fixed, seeded input the net takes: its own example (clip nets, colorization), a random clip for a clip net
    without one, else a random image. The caller's random state is left as it was."""
    own = getattr(net, "example_inputs", None)
    if own is not None:
        with torch.random.fork_rng(devices=[]):  # example_inputs draw from the global CPU generator
            torch.random.default_generator.manual_seed(0)
            return own()
    if takes_clips(net):
        g = torch.Generator().manual_seed(0)
        return (torch.rand(1, PROBE_FRAMES, in_channels, PROBE_SIDE, PROBE_SIDE, generator=g),)
    return example_inputs(net, in_channels, PROBE_SIDE, PROBE_SIDE, seed=0, batch=1)


def first_tensor(out: Any) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else ()
    return next((v for v in values if isinstance(v, Tensor)), None)


def bf16_psnr(net: nn.Module, in_channels: int, device: torch.device) -> float:
    """PSNR (peak 1) of the net's bf16-autocast output on the probe against its fp32 output; inf when equal, -inf
    when there is nothing finite to compare."""
    args = tuple(a.to(device) if isinstance(a, Tensor) else a for a in probe_inputs(net, in_channels))
    with torch.inference_mode():
        ref = first_tensor(net(*args))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fast = first_tensor(net(*args))
    if ref is None or fast is None:
        return -math.inf
    mse = (fast.float() - ref.float()).pow(2).mean().item()
    if not math.isfinite(mse):
        return -math.inf
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def exact_setting(cfg: Any) -> bool:
    """infer.py's `exact`, checked: true or false."""
    exact = cfg.get("exact", False)
    if not isinstance(exact, bool):
        raise ValueError(f"exact={exact}: expected true or false")
    return exact


def resolve_switches(cfg: Any, net: nn.Module, device: torch.device, in_channels: int = 3, what: str = "model",
                     own: bool = True) -> tuple[Switches, list[str]]:
    """The switches to apply to `net` (on `device`, eval mode) for infer.py's config, and notes to print. own: one
    of the project's generators (False: a community model, whose layout auto leaves alone)."""
    exact = exact_setting(cfg)
    compile_ = cfg.get("compile", False)
    check_setting("compile", compile_, auto=False)
    setting = cfg.get("bf16", "auto")
    bf16, notes = wants_bf16(setting, device), []
    channels_last = wants_channels_last(cfg.get("channels_last", "auto"), net, device, own)
    if exact:
        return Switches(), []
    if bf16 and setting == "auto":
        try:
            db = bf16_psnr(net, in_channels, device)
            why = f"its bf16 output is {db:.1f} dB from fp32's (< {FAST_TOLERANCE_DB:g})"
        except Exception as err:  # noqa: BLE001 - an op without bf16, an input the probe cannot guess: run fp32
            db, why = -math.inf, f"bf16 failed on a probe input ({type(err).__name__}: {str(err).splitlines()[0]})"
        if db < FAST_TOLERANCE_DB:
            bf16 = False
            notes.append(f"note: {what}: {why}: runs fp32 (bf16=true forces it)")
    return Switches(channels_last, bool(compile_), bf16), notes
