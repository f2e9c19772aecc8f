"""Tiled inference: run an image-to-image network (any scale) on images larger than GPU memory allows, tile by tile.

Each tile is run with `overlap` extra input pixels of context on every side (fewer at the image border), and
only the output of its core is kept (crop-of-overlap, no blending). For a convolutional net whose receptive
field radius is at most `overlap` input pixels, every kept output pixel sees exactly what it would see in one
full-image pass, so the tiled result equals the untiled one up to float rounding. Blending would instead
average two slightly different predictions and never be exact.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoregan.gans.sizes import net_multiple


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad bottom/right so H and W divide `multiple` (pixel-unshuffle and U-Net nets need it). Reflect, as the
    nets pad themselves; a side too short to reflect (a 1x1 or 2x3 image padded to 4) is replicated instead."""
    for dim in (-2, -1):
        pad = (-x.shape[dim]) % multiple
        if pad:
            mode = "reflect" if pad < x.shape[dim] else "replicate"
            x = F.pad(x, (0, pad, 0, 0) if dim == -1 else (0, 0, 0, pad), mode=mode)
    return x


def _run(net: nn.Module, x: Tensor, scale: int, device: torch.device, half: bool, multiple: int) -> Tensor:
    """(B,3,h,w) -> (B,3,h*s,w*s) float32 on `device`."""
    h, w = x.shape[-2:]
    x = _pad_to_multiple(x.to(device, torch.float32), multiple)
    autocast = torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()
    with autocast:
        y = net(x)
    if y.shape[-2:] != (x.shape[-2] * scale, x.shape[-1] * scale):
        raise ValueError(
            f"network output {tuple(y.shape[-2:])} is not scale={scale} times its input {tuple(x.shape[-2:])}"
        )
    return y[..., : h * scale, : w * scale].float()


@torch.inference_mode()
def apply_tiled(
    net: nn.Module,
    img: Tensor,
    scale: int,
    tile: int | None = None,
    overlap: int = 32,
    device: torch.device | str | None = None,
    half: bool = False,
    pad_multiple: int | None = None,
) -> Tensor:
    """Run `net` on `img` ((3,H,W) or (B,3,H,W), [0,1]) in `tile`x`tile` input tiles; returns float32
    (B,3,H*scale,W*scale) (batch dim kept as given) on `img`'s device.

    `tile=None` (or a tile covering the image) runs in one pass. `device` defaults to the net's; the net is
    expected to live there. `half` enables fp16 autocast on CUDA only (CPU fp16 is slow and inexact).
    `pad_multiple`: nets that pixel-unshuffle their input (RRDBNet x1/x2 by 4/scale) need sides divisible by
    it; each pass is padded to it (reflect, or replicate for sides too short to reflect) and cropped back, and
    tiles start on multiples of it so pixels are grouped as in the full image. Default: `net_multiple`.
    """
    single = img.dim() == 3
    x = img[None] if single else img
    if x.dim() != 4:
        raise ValueError(f"upscale: expected (3,H,W) or (B,3,H,W), got {tuple(img.shape)}")
    check_tiling(tile, overlap)
    if device is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else x.device
    device = torch.device(device)
    half = half and device.type == "cuda"
    if pad_multiple is None:
        pad_multiple = net_multiple(net)

    b, c, h, w = x.shape
    if tile is None or (tile >= h and tile >= w):
        out = _run(net, x, scale, device, half, pad_multiple).to(x.device)
        return out[0] if single else out

    out = torch.empty((b, c, h * scale, w * scale), dtype=torch.float32, device=x.device)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            # input window: the core plus `overlap` of context, clipped to the image; its origin aligned to
            # pad_multiple so a pixel-unshuffle net groups pixels as it does on the full image
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t0, l0 = t0 - t0 % pad_multiple, l0 - l0 % pad_multiple
            t1, l1 = min(bottom + overlap, h), min(right + overlap, w)
            y = _run(net, x[..., t0:t1, l0:l1], scale, device, half, pad_multiple)
            # keep the core's output only
            core = y[..., (top - t0) * scale : (bottom - t0) * scale, (left - l0) * scale : (right - l0) * scale]
            out[..., top * scale : bottom * scale, left * scale : right * scale] = core.to(x.device)
    return out[0] if single else out


def check_tiling(tile: int | None, overlap: int) -> None:
    """The `tile` / `tile_overlap` settings, refused in one line naming the key (entry points call it up front)."""
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0):
        raise ValueError(f"tile={tile}: must be a positive number of input pixels, or null for no tiling")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"tile_overlap={overlap}: must be a whole number of pixels >= 0")


def prepare_for_inference(
    net: nn.Module, channels_last: bool = False, compile: bool = False, bf16: bool = False
) -> nn.Module:
    """Speed switches (infer.py's `channels_last`, `compile`, `bf16`, as restoregan.inference.speed resolves them),
    applied in place: the module keeps its type, methods and state-dict keys, so every task's code calls it as
    before. Returns `net`. Figures: bench/perf_inference.py on a 2-core AMD EPYC CPU (bench/results/perf/).

    channels_last: NHWC weights. oneDNN / cuDNN then run every conv in NHWC without a layout reorder around
    each one; the input needs no conversion (a conv with NHWC weights returns NHWC). On CPU about 1.0-1.6x faster;
    outputs agree to float rounding and may come back with NHWC strides.
    compile: torch.compile. The first call per input shape compiles (15-50 s on CPU, needs a C++ compiler
    there), later calls 1.0-1.9x faster: it pays off over many frames of one size, not a few images or tiles.
    bf16: the forward runs under bfloat16 autocast on the net's device and returns float32. 1.2-2.3x faster
    on CPUs with AVX512-BF16 or AMX, emulated and slow on older ones; PSNR 64-89 dB against fp32, below 8-bit
    rounding.
    """
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if bf16:
        param = next(net.parameters(), None)
        device_type = param.device.type if param is not None else "cpu"
        net.forward = _autocast_forward(net.forward, device_type, torch.bfloat16)  # instance attr: this net only
    if compile:
        net.compile()
    return net


def _autocast_forward(forward: Callable[..., Any], device_type: str, dtype: torch.dtype) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            out = forward(*args, **kwargs)
        # callers expect float32 (they quantise, blend with fp32 frames, compare)
        if isinstance(out, Tensor):
            return out.float()
        if isinstance(out, dict):
            return {k: v.float() if isinstance(v, Tensor) else v for k, v in out.items()}
        if isinstance(out, (tuple, list)):
            return type(out)(v.float() if isinstance(v, Tensor) else v for v in out)
        return out

    return run


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto` -> cuda when available, else cpu; anything else as torch spells it, checked up front."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name}: MPS is not available on this machine (use device=cpu or auto)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name}: CUDA is not available on this machine (use device=cpu or auto)")
    return device


def resolve_half(setting: str | bool, device: torch.device) -> bool:
    """`half`: auto = fp16 autocast on CUDA; true asks for it, granted on CUDA only (CPU fp16 is slow and inexact)."""
    return device.type == "cuda" if setting == "auto" else bool(setting) and device.type == "cuda"
