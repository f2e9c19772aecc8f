"""Exponential moving average of the generator's weights (ESRGAN/Real-ESRGAN validate and export the EMA)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(net: nn.Module) -> nn.Module:
    """A frozen copy of `net` to be updated with `update_ema`; registered as a submodule so it is checkpointed."""
    ema = copy.deepcopy(net).eval()
    ema.requires_grad_(False)
    return ema


def warmup_decay(decay: float, step: int) -> float:
    """min(decay, (1 + t) / (10 + t)): early on the average forgets the random init quickly, which matters
    for short CPU runs (with a fixed 0.999, 22% of the weights after 1,500 steps would still be the init)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net for parameters; buffers (e.g. BN statistics) are copied."""
    ema_params = list(ema.parameters())
    net_params = [p.detach() for p in net.parameters()]
    torch._foreach_lerp_(ema_params, net_params, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers()):
        b_ema.copy_(b)
