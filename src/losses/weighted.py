"""Weighted sum of named loss terms: how a loss config (`conf/loss/*.yaml`) becomes one generator loss."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn


class NonFiniteLossError(FloatingPointError):
    """A loss term became inf/nan; `term` is its config name (e.g. "pix"), for the trainer to name with the
    iteration."""

    def __init__(self, message: str, term: str | None = None, value: float = float("nan")) -> None:
        super().__init__(message)
        self.term, self.value = term, value


class WeightedSum(nn.Module):
    """`terms = {name: {"weight": w, "fn": module}}`; forward -> (sum of w * fn(pred, target), {name: fn value}).

    The fns live in a ModuleDict, so e.g. the perceptual VGG moves with `.to(device)`. Terms with weight 0 are
    dropped (config can switch a term off without deleting it). A non-finite term raises an error naming it.
    """

    def __init__(self, terms: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        for name, term in terms.items():
            if set(term) != {"weight", "fn"}:
                raise ValueError(f"loss term {name!r}: expected keys 'weight' and 'fn', got {sorted(term)}")
        active = {name: term for name, term in terms.items() if term["weight"] != 0}
        self.weights = {name: float(term["weight"]) for name, term in active.items()}
        self.fns = nn.ModuleDict({name: term["fn"] for name, term in active.items()})

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        total = pred.new_zeros(())
        values = {}
        for name, fn in self.fns.items():
            value = fn(pred, target)
            total = total + self.weights[name] * value
            values[name] = value.detach()
        # One check of the sum, not one per term: on a GPU each check waits for the device (a host sync), and a
        # non-finite term makes the sum non-finite; only then are the terms looked at, to name the culprit.
        if not torch.isfinite(total):
            for name, value in values.items():
                if not torch.isfinite(value).all():
                    bad = value.item()
                    fn = type(self.fns[name]).__name__
                    raise NonFiniteLossError(f"loss term {name!r} ({fn}) is {bad}", name, bad)
            raise NonFiniteLossError(f"the weighted loss sum is {total.item()} (every term is finite: overflow)",
                                     None, total.item())
        return total, values
