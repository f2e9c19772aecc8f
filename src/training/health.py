"""Training watches its own health: a diverged GAN stops the run instead of exporting garbage with exit 0.

Checked at every validation (before ModelCheckpoint saves: Lightning runs checkpoint callbacks last) and once more
when training ends (before train() writes its final checkpoint and the export):

- finite: every floating parameter and buffer of net_g, net_g_ema and net_d is finite and within +-max_abs. One
  fused max-|x| reduction per net; the offending tensor is looked up only when one fails. (D's BatchNorm running
  variance reaching inf while every loss stayed finite is how `model.optimizer_d.lr=1e6` went unnoticed.)
- d_saturation: D is saturated at a validation when the gap between its mean outputs on real and on fake images
  last logged, |train/d_real - train/d_fake|, is beyond max_gap, or not finite (outputs beyond +-max_abs count
  as not finite: float32 no longer resolves their gap). The gap, not the outputs themselves: the relativistic
  (esrgan) and WGAN-GP losses do not change when a constant is added to every D output, so on a long healthy run
  the outputs may drift anywhere, while under every loss a D that tells real from fake perfectly has a large gap
  (beyond ~30 the logistic losses leave it no gradient; hinge and LSGAN stop pushing at 2 and 1). Healthy
  quickstart GAN phases stayed below 5 (conf/train.yaml). `validations` such validations in a row stop.
- below_baseline: `val/<metric>` below the best of the task's baselines (`val/<metric>_<baseline>`: bicubic,
  grey, repeat/blend, damaged/median) by more than `margin`, for `validations` validations in a row. Counted once
  the model has been within the margin at least once, so the first validations of a run from random weights
  never count.

A validation that looks unhealthy but has not fired yet writes no checkpoint, so `last.ckpt` stays the last
healthy state, which the stop message names. A run that ends inside such a streak keeps `last.ckpt` and exports
that last healthy state; its final state goes to checkpoints/final_unhealthy.ckpt (restoregan.training.run.finish).
A non-finite loss (GANModule) names its term and iteration the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import IterableDataset, default_collate

from restoregan.tasks.base import Task

NETS = ("net_g", "net_g_ema", "net_d")


class TrainingHealthError(RuntimeError):
    """The run stopped itself: a net, a loss term or a validation metric went bad. The message names it, the
    iteration and the last good checkpoint."""


@dataclass(frozen=True)
class HealthConfig:
    enabled: bool = True
    finite: bool = True
    max_abs: float | None = 1.0e12
    saturation_validations: int = 3
    saturation_max_gap: float = 100.0
    baseline_validations: int = 3
    baseline_metric: str = "psnr"
    baseline: str | None = None
    baseline_margin: float = 5.0

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> HealthConfig:
        """From train.yaml's `health:` block (nested as there); a missing block or key keeps the default. Each
        value is checked here, so a bad override stops the run before it starts, naming the key."""
        node = node or {}
        top = list(dict.fromkeys(path[0] for path in _PATHS.values()))
        blocks: dict[str, list[str]] = {}
        for path in _PATHS.values():
            if len(path) == 2:
                blocks.setdefault(path[0], []).append(path[1])
        for key, value in node.items():
            if key not in top:
                raise ValueError(f"health.{key}: unknown key (known: {', '.join(top)})")
            for sub in (value or {}) if key in blocks else ():
                if sub not in blocks[key]:
                    raise ValueError(f"health.{key}.{sub}: unknown key (known: {', '.join(blocks[key])})")
        values = {}
        for f in fields(cls):
            path = _PATHS[f.name]
            block = node if len(path) == 1 else (node.get(path[0]) or {})
            values[f.name] = _checked("health." + ".".join(path), block.get(path[-1], f.default), f.name)
        return cls(**values)


# HealthConfig field -> its place in the `health:` block
_PATHS = {
    "enabled": ("enabled",),
    "finite": ("finite",),
    "max_abs": ("max_abs",),
    "saturation_validations": ("d_saturation", "validations"),
    "saturation_max_gap": ("d_saturation", "max_gap"),
    "baseline_validations": ("below_baseline", "validations"),
    "baseline_metric": ("below_baseline", "metric"),
    "baseline": ("below_baseline", "baseline"),
    "baseline_margin": ("below_baseline", "margin"),
}


def _checked(key: str, value: Any, name: str) -> Any:
    if name in ("enabled", "finite"):
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value}: expected true or false")
        return value
    if name.endswith("validations"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key}={value}: expected a whole number of validations >= 0 (0 switches it off)")
        return value
    if name in ("baseline_metric", "baseline"):
        if value is None and name == "baseline":
            return None
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key}={value}: expected the name of a validation metric" if name == "baseline_metric"
                             else f"{key}={value}: expected a baseline name the task logs, or null for the best one")
        return value
    if value is None and name == "max_abs":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            value < 0 if name == "baseline_margin" else value <= 0):
        expected = "a number >= 0" if name == "baseline_margin" else "a positive number"
        raise ValueError(f"{key}={value}: expected {expected}" + (" or null" if name == "max_abs" else ""))
    return float(value)


def max_abs_value(net: nn.Module) -> float:
    """max |x| over the net's floating parameters and buffers (nan if any is nan): one fused reduction."""
    tensors = [t.detach() for t in (*net.parameters(), *net.buffers()) if t.is_floating_point() and t.numel()]
    if not tensors:
        return 0.0
    try:
        per_tensor = torch._foreach_norm(tensors, float("inf"))  # the multi-tensor kernel clip_grad_norm_ uses
    except (AttributeError, RuntimeError):
        per_tensor = [t.abs().amax() for t in tensors]
    return float(torch.stack([n.float() for n in per_tensor]).amax())


def first_bad_tensor(net: nn.Module, max_abs: float | None) -> tuple[str, str, str]:
    """(kind, name, what) of the first parameter or buffer that is not finite or beyond max_abs."""
    for kind, named in (("parameter", net.named_parameters()), ("buffer", net.named_buffers())):
        for name, t in named:
            if not t.is_floating_point() or not t.numel():
                continue
            t = t.detach()
            if not torch.isfinite(t).all():
                return kind, name, "holds nan" if torch.isnan(t).any() else "holds inf"
            peak = float(t.abs().amax())
            if max_abs is not None and peak > max_abs:
                return kind, name, f"reached |x| = {peak:.3g} (beyond health.max_abs={max_abs:g})"
    return "tensor", "?", "is not finite"


def last_good_checkpoint(trainer: pl.Trainer | None) -> str:
    """The end of a stop message: the newest last.ckpt (which the health checks never let an unhealthy state
    overwrite) and, where known, the iteration it holds."""
    callback = trainer.checkpoint_callback if trainer is not None else None
    dirpath = getattr(callback, "dirpath", None)
    last = Path(dirpath) / "last.ckpt" if dirpath is not None else None
    if last is None or not last.exists():
        return "training stopped; no checkpoint was written before it"
    monitors = [cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor)]
    saved = monitors[0].saved_iteration if monitors else None
    if monitors and saved is None:  # a last.ckpt left by an earlier run this one started over (overwrite=true)
        return "training stopped; no checkpoint was written before it"
    return f"training stopped; last good checkpoint: {last}" + (f" (iteration {saved})" if saved is not None else "")


class HealthMonitor(pl.Callback):
    """Stops training with TrainingHealthError when a check of HealthConfig fires (see the module docstring)."""

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = config or HealthConfig()
        self.armed = False  # the model has once been within the margin of its baseline
        self.saturated_streak = 0
        self.below_streak = 0
        self.saved_iteration: int | None = None  # what last.ckpt holds, as far as this session saw it written

    # Streaks survive a resume (plain ints: checkpoints load weights-only).
    def state_dict(self) -> dict[str, Any]:
        return {"armed": self.armed, "saturated_streak": self.saturated_streak, "below_streak": self.below_streak}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.armed = bool(state_dict.get("armed", False))
        self.saturated_streak = int(state_dict.get("saturated_streak", 0))
        self.below_streak = int(state_dict.get("below_streak", 0))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None:  # resumed: last.ckpt holds (at least) the loaded state
            self.saved_iteration = int(pl_module.iteration)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        iteration = int(pl_module.iteration)
        if self.config.enabled:
            self.check_finite(trainer, pl_module, iteration)
            suspect = self._check_saturation(trainer, iteration) | self._check_baseline(trainer, pl_module, iteration)
            if suspect:
                # Keep last.ckpt at the last healthy validation: ModelCheckpoint (which runs after this callback)
                # skips a step it believes it has saved already.
                for callback in trainer.checkpoint_callbacks:
                    if hasattr(callback, "_last_global_step_saved"):
                        callback._last_global_step_saved = trainer.global_step
                return
        self.saved_iteration = iteration  # ModelCheckpoint saves this validation's state next

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before train()'s final checkpoint and export: the iterations after the last validation are checked too
        if self.config.enabled:
            self.check_finite(trainer, pl_module, int(pl_module.iteration))
        # ModelCheckpoint (after this callback) writes last.ckpt at the end of training when it has written none
        # in this session, which would put a suspect final state there; train() writes the final last.ckpt itself
        # (restoregan.training.run.finish), so it is told one is written
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "save_last", False) and not getattr(callback, "_last_checkpoint_saved", True):
                callback._last_checkpoint_saved = "(written by train())"

    def open_streak(self) -> str | None:
        """What the last validations found suspect when training ended before they added up to a stop; None when
        the last validation was healthy. Starts with the net or metric, as the stop messages do."""
        if not self.config.enabled:
            return None
        found = []
        if self.saturated_streak:
            found.append(f"net_d: saturated at the last {self.saturated_streak} validation(s) (a stop takes "
                         f"health.d_saturation.validations={self.config.saturation_validations})")
        if self.below_streak:
            found.append(f"val/{self.config.baseline_metric}: below its baseline by more than "
                         f"health.below_baseline.margin={self.config.baseline_margin:g} at the last "
                         f"{self.below_streak} validation(s) (a stop takes health.below_baseline.validations="
                         f"{self.config.baseline_validations})")
        return "; ".join(found) or None

    def check_finite(self, trainer: pl.Trainer | None, pl_module: nn.Module, iteration: int) -> None:
        if not self.config.finite:
            return
        limit = self.config.max_abs
        for name in NETS:
            net = getattr(pl_module, name, None)
            if net is None:
                continue
            peak = max_abs_value(net)
            if math.isfinite(peak) and (limit is None or peak <= limit):
                continue
            kind, tensor, what = first_bad_tensor(net, limit)
            raise TrainingHealthError(f"{name}: {kind} {tensor} {what} at iteration {iteration}; "
                                      f"{last_good_checkpoint(trainer)}")

    def _check_saturation(self, trainer: pl.Trainer, iteration: int) -> bool:
        needed = self.config.saturation_validations
        metrics = trainer.callback_metrics
        if not needed or "train/d_real" not in metrics or "train/d_fake" not in metrics:
            self.saturated_streak = 0  # no D trained yet (phase 1) or the check is off
            return False
        d_real, d_fake = metrics["train/d_real"].detach().float(), metrics["train/d_fake"].detach().float()
        gap = torch.nan_to_num((d_real - d_fake).abs(), nan=math.inf)  # non-finite D outputs count as saturated
        if self.config.max_abs is not None and max(float(d_real.abs()), float(d_fake.abs())) > self.config.max_abs:
            gap = torch.full_like(gap, math.inf)  # outputs so large that float32 no longer resolves their gap
        if trainer.world_size > 1:  # each rank logs its own batch: agree on the worst, so every rank decides alike
            gap = trainer.strategy.reduce(gap.to(trainer.strategy.root_device), reduce_op="max").cpu()
        gap, limit = float(gap), self.config.saturation_max_gap
        if gap <= limit:
            self.saturated_streak = 0
            return False
        self.saturated_streak += 1
        if self.saturated_streak >= needed:
            raise TrainingHealthError(
                f"net_d: saturated for {self.saturated_streak} validations in a row at iteration {iteration} "
                f"(train/d_real {float(d_real):.3g}, train/d_fake {float(d_fake):.3g}: their gap beyond "
                f"health.d_saturation.max_gap={limit:g}); "
                f"{last_good_checkpoint(trainer)}"
            )
        return True

    def _check_baseline(self, trainer: pl.Trainer, pl_module: pl.LightningModule, iteration: int) -> bool:
        cfg = self.config
        if not cfg.baseline_validations:
            return False
        metrics = trainer.callback_metrics
        key = f"val/{cfg.baseline_metric}"
        names = list(getattr(pl_module, "baseline_names", []) or [])
        logged = [k[4:] for k in metrics if k.startswith("val/")]
        check_rule_names(cfg, sorted(k for k in logged if not any(k.endswith(f"_{n}") for n in names)), names)
        if cfg.baseline is not None:
            names = [cfg.baseline]
        scores = {n: float(metrics[f"{key}_{n}"]) for n in names if f"{key}_{n}" in metrics}
        if not scores:
            return False
        baseline = max(scores, key=scores.get)
        value, reference = float(metrics[key]), scores[baseline]
        if math.isfinite(value) and value >= reference - cfg.baseline_margin:
            self.armed, self.below_streak = True, 0
            return False
        if not self.armed and math.isfinite(value):
            return False  # never reached its baseline yet (a run from random weights): not a fall
        self.below_streak += 1
        if self.below_streak >= cfg.baseline_validations:
            raise TrainingHealthError(
                f"{key}: {value:.3f}, below {key}_{baseline} ({reference:.3f}) by more than "
                f"health.below_baseline.margin={cfg.baseline_margin:g} for {self.below_streak} validations in a "
                f"row at iteration {iteration}; {last_good_checkpoint(trainer)}"
            )
        return True


def check_rule_names(config: HealthConfig, metrics: list[str], baselines: list[str]) -> None:
    """The below-baseline rule's metric and baseline against the names the task logs (metrics as `val/<metric>`,
    baselines as `val/<metric>_<baseline>`)."""
    if not config.enabled or not config.baseline_validations:
        return
    if config.baseline_metric not in metrics:
        raise ValueError(f"health.below_baseline.metric={config.baseline_metric}: the task logs no "
                         f"val/{config.baseline_metric} (it logs {', '.join(metrics) or 'no validation metric'})")
    if config.baseline is not None and config.baseline not in baselines:
        raise ValueError(f"health.below_baseline.baseline={config.baseline}: the task has no such baseline "
                         f"(it has {', '.join(baselines) or 'none'})")


def check_rule_names_up_front(config: HealthConfig, task: Task, val_set: Any) -> None:
    """`check_rule_names` before training starts, not at the first validation (possibly hours in): the names come
    from the task's metrics and baselines on the first validation item. A streamed validation set has no first
    item to spare; its names are checked at the first validation."""
    if not config.enabled or not config.baseline_validations or val_set is None or isinstance(val_set, IterableDataset):
        return
    if len(val_set) == 0:
        return
    batch = default_collate([val_set[0]])
    baselines = task.baselines(batch)
    scores = task.metrics(next(iter(baselines.values()), task.target(batch)), batch)
    check_rule_names(config, list(scores), list(baselines))
