"""`trainer.precision: fast`: bf16 mixed precision where the device computes bf16 natively, exact fp32 elsewhere.

On a CPU with AVX512-BF16 or AMX (oneDNN's bf16 kernels) bf16-mixed trains the film quickstarts 1.6-1.7x faster
(docs/PERFORMANCE.md); on a CPU without them bf16 is emulated and no faster, so `fast` keeps 32-true there. On CUDA it
is bf16-mixed where the GPU supports bf16 (Ampere and later). Weights, optimizer state and exports stay fp32 either
way; `trainer.precision=32-true` is the exact switch.
"""

from __future__ import annotations

import torch

FAST = "fast"


def native_bf16(device: str) -> bool:
    """Whether `device` ("cpu" or "cuda") runs bf16 in hardware. Not oneDNN's own bf16 check, which is true on any
    AVX512 CPU (it emulates bf16 there, slower than fp32), nor CUDA's default, which counts emulation."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16") or caps.get("bf16"))  # x86; "bf16": Arm


def training_device(accelerator: str) -> str | None:
    """The device Lightning will pick for `trainer.accelerator` ("cpu"/"cuda"; None for others such as mps)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu" if accelerator in ("cpu", "auto") else None


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """`fast` -> "bf16-mixed" where the training device does bf16 natively, else "32-true"; any other value as
    given (Lightning checks it)."""
    if precision != FAST:
        return precision
    device = training_device(str(accelerator))
    return "bf16-mixed" if device is not None and native_bf16(device) else "32-true"
