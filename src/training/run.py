"""Compose a training run from config: networks, losses, data, logger, callbacks; fit; export."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger

from restoregan.data.io import set_max_pixels
from restoregan.gans.card import model_card, training_data
from restoregan.gans.checkpoint import load_generator, save_export, torch_load_weights_only
from restoregan.losses.weighted import WeightedSum
from restoregan.models import task_from_config
from restoregan.training.gan_module import GANModule
from restoregan.training.health import (
    HealthConfig,
    HealthMonitor,
    TrainingHealthError,
    check_rule_names_up_front,
)
from restoregan.training.inputs import check_run_outputs
from restoregan.training.loggers import log_config
from restoregan.training.lock import hold_run, launching_rank, save_run_config
from restoregan.training.precision import FAST, resolve_precision
from restoregan.training.checkpoint_io import AtomicCheckpointIO, remove_checkpoint_temps
from restoregan.training.progress import IterationProgressBar
from restoregan.training.resume import ResumeState, read_resume_state, resume_loggers

FINAL_UNHEALTHY = "final_unhealthy.ckpt"  # a run's final state when it ended inside a suspect streak
log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    last_checkpoint: Path
    export: Path | None  # None: not rank zero, or checkpoints=false
    module: GANModule
    metrics: dict[str, float] = field(default_factory=dict)  # the last logged value of each metric (val/psnr, ...)

    def metric(self, name: str | None) -> float | None:
        """`optimized_metric`'s value for a sweeper (None when no name is given)."""
        if name is None:
            return None
        if name not in self.metrics:
            known = ", ".join(sorted(k for k in self.metrics if k.startswith("val/"))) or "none"
            raise ValueError(f"optimized_metric={name}: the run logged no such metric (validation logged: {known})")
        return self.metrics[name]


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path, overwrite: bool) -> str | None:
    """`last` -> run_dir/checkpoints/last.ckpt; refuse to silently restart over an existing run."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt_path is None:
        if last.exists() and not overwrite:
            raise FileExistsError(
                f"{run_dir}: already holds checkpoints; pass ckpt_path=last to resume it, "
                "name=<new name> for a new run, or overwrite=true to start it again"
            )
        return None
    if ckpt_path == "last":
        if not last.exists():
            raise FileNotFoundError(f"{last}: no checkpoint to resume from (is run_dir/name the same as before?)")
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"{ckpt_path}: checkpoint not found")
    return ckpt_path


def build_module(cfg: DictConfig) -> GANModule:
    net_g = instantiate(cfg.generator)
    if cfg.init_from:
        loaded = load_generator(cfg.init_from)
        try:
            net_g.load_state_dict(loaded.net.state_dict())
        except RuntimeError as err:
            raise ValueError(
                f"{cfg.init_from}: its generator ({loaded.source}) does not fit generator config "
                f"{cfg.generator._target_}: {str(err).splitlines()[0]}"
            ) from None
    net_d = instantiate(cfg.discriminator) if cfg.get("discriminator") else None
    adversarial = cfg.loss.get("adversarial")
    return GANModule(
        net_g=net_g,
        net_d=net_d,
        task=task_from_config(cfg.task),
        pretrain_loss=instantiate_terms(cfg.loss.pretrain),
        content_loss=instantiate_terms(cfg.loss.content),
        adversarial_loss=instantiate(adversarial.fn) if adversarial else None,
        adversarial_weight=adversarial.weight if adversarial else 0.0,
        pretrain_iters=cfg.pretrain_iters,
        d_pretrain_iters=cfg.d_pretrain_iters,
        generator_config=OmegaConf.to_container(cfg.generator, resolve=True),
        **instantiate(cfg.model, _convert_="partial"),
    )


def instantiate_terms(node: DictConfig) -> WeightedSum:
    """`{name: {weight, fn}}` config -> WeightedSum of the instantiated loss modules."""
    return WeightedSum({name: {"weight": t.weight, "fn": instantiate(t.fn)} for name, t in node.items()})


def extra_callbacks() -> list[pl.Callback]:
    """Hook for tests and embedding code to add callbacks without touching the config."""
    return []


def has_gan(cfg: DictConfig) -> bool:
    return bool(cfg.get("discriminator")) and bool(cfg.loss.get("adversarial")) and cfg.loss.adversarial.weight > 0


def max_steps(cfg: DictConfig) -> int:
    """Lightning counts optimizer steps: one per batch in phases 1 and 2, two (D and G) per batch in phase 3.
    Without a GAN the whole run is phase 1 (pretrain_iters + gan_iters batches)."""
    if not has_gan(cfg):
        return cfg.pretrain_iters + cfg.gan_iters
    return cfg.pretrain_iters + cfg.d_pretrain_iters + 2 * cfg.gan_iters


def total_iterations(cfg: DictConfig) -> int:
    """Batches in the run (the d_pretrain phase only exists with a GAN)."""
    return cfg.pretrain_iters + (cfg.d_pretrain_iters if has_gan(cfg) else 0) + cfg.gan_iters


def check_schedule(cfg: DictConfig) -> None:
    """The run's own keys, before anything starts: one line naming the key, its value and what it takes."""
    whole = {"pretrain_iters": 0, "d_pretrain_iters": 0, "gan_iters": 0, "val_every": 1, "seed": 0}
    for key, low in whole.items():
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (key == "seed" and value >= 2**32):
            what = "a seed from 0 to 2**32-1" if key == "seed" else f"a whole number of iterations >= {low}"
            raise ValueError(f"{key}={value}: expected {what}")
    for key in ("overwrite", "pretrained_backbones", "checkpoints"):
        if not isinstance(cfg.get(key, False), bool):
            raise ValueError(f"{key}={cfg[key]}: expected true or false")
    for key in ("ckpt_path", "init_from", "run_dir"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise ValueError(f"{key}={cfg[key]}: expected a path" + (", `last` or null" if key == "ckpt_path" else ""))
    HealthConfig.from_config(cfg.get("health"))  # the health checks' settings, now rather than at the first validation
    if cfg.d_pretrain_iters > 0 and not has_gan(cfg):
        raise ValueError(
            f"d_pretrain_iters={cfg.d_pretrain_iters} needs a discriminator and an adversarial loss term "
            "(this config has none); set d_pretrain_iters=0"
        )


def save_final_checkpoint(trainer: pl.Trainer, last: Path) -> None:
    """Checkpoints come after validations; the iterations after the last one would otherwise be lost to
    `ckpt_path=last`. Every rank calls it, rank zero writes (aside, then renamed: AtomicCheckpointIO)."""
    trainer.save_checkpoint(last, weights_only=False)  # full state for resume


def finish(trainer: pl.Trainer, module: GANModule, run_dir: Path) -> None:
    """After fit, before the export. A healthy end: the final state becomes last.ckpt. An end inside an open
    suspect streak (the last validations saturated or below baseline, fewer than health.*.validations of them):
    last.ckpt stays the last healthy state, the final state is saved beside it as final_unhealthy.ckpt, and the
    module goes back to last.ckpt's weights, so the export (what evaluate, infer and `pipeline=` pick up) is that
    healthy state; a one-line warning names the streak and both files.

    Why not stop non-zero: fewer suspect validations than the configured count is, by the run's own settings, not
    yet a failure, and the run did what it was asked. Why not export the final state: an export is handed on
    without a second look (the pipeline even finds it under runs/ by itself), and a state the checks were about
    to reject must not reach someone's scans; last.ckpt and the export then agree, and nothing is lost.
    Without any healthy checkpoint there is nothing to export: the run stops with TrainingHealthError."""
    last = run_dir / "checkpoints" / "last.ckpt"
    monitor = next(cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor))
    streak = monitor.open_streak()
    if streak is None:
        save_final_checkpoint(trainer, last)
        return
    final, iteration = last.with_name(FINAL_UNHEALTHY), int(module.iteration)
    trainer.save_checkpoint(final, weights_only=False)  # every rank takes part, rank zero writes
    if monitor.saved_iteration is None:  # none from this run (one there is an earlier run's, started over)
        raise TrainingHealthError(f"{streak} when training ended at iteration {iteration}; no healthy checkpoint "
                                  f"to export (final state saved as {final})")
    module.load_state_dict(torch_load_weights_only(last)["state_dict"])
    log.warning(f"{streak} when training ended at iteration {iteration}: {last} and the export hold the last "
                f"healthy state (iteration {int(module.iteration)}); the final state is in {final}")


class IterationCheckpoint(ModelCheckpoint):
    """Names checkpoints by GAN iteration, as the validation grids are (`iter0000060.ckpt` beside
    `val_iter0000060.png`), not by Lightning's global_step, which counts optimizer steps (two per GAN iteration)."""

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["iteration"] = torch.tensor(int(trainer.lightning_module.iteration))
        return candidates


def build_callbacks(cfg: DictConfig, run_dir: Path, health: HealthConfig) -> list[pl.Callback]:
    # HealthMonitor before ModelCheckpoint (Lightning runs checkpoint callbacks last): an unhealthy state is never saved
    callbacks: list[pl.Callback] = [ResumeState(), HealthMonitor(health), *extra_callbacks()]
    if cfg.get("checkpoints", True):  # false (debug=...): no checkpoint at all
        callbacks.insert(0, iteration_checkpoint(run_dir))
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(IterationProgressBar(total_iterations(cfg)))
    return callbacks


def iteration_checkpoint(run_dir: Path) -> IterationCheckpoint:
    return IterationCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="iter{iteration:07d}",
        auto_insert_metric_name=False,
        save_last=True,
        save_top_k=1,  # no monitor: keeps the newest; last.ckpt is what resume uses
        enable_version_counter=False,  # a name is its iteration; never iter...-v1.ckpt / last-v1.ckpt beside it
    )


def clear_earlier_checkpoints(folder: Path) -> None:
    """overwrite=true, a fresh start: the earlier run's checkpoints go. Left there, its last.ckpt would stay while
    this run writes its own beside it, and `ckpt_path=last` after a kill would resume the earlier run."""
    old = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    for path in old:
        path.unlink()
    if old:
        log.info(f"overwrite=true: removed the earlier run's {len(old)} checkpoint(s) from {folder}")


def build_logger(cfg: DictConfig, resume: dict | None) -> Logger | bool:
    """The configured logger; on resume told where the checkpoint left it (its rows, its run id)."""
    if not cfg.get("logger"):
        return False
    logger = instantiate(cfg.logger)
    if resume is not None:
        resume_loggers([logger], resume)
    log_config(logger, cfg)
    return logger


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[pl.Callback], logger: Logger | bool) -> pl.Trainer:
    precision = resolve_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto"))
    if cfg.trainer.get("precision") == FAST:
        log.info(f"trainer.precision=fast: {precision} on this device")
    return instantiate(
        cfg.trainer,
        precision=precision,
        max_steps=max_steps(cfg),
        val_check_interval=cfg.val_every,
        check_val_every_n_epoch=None,
        default_root_dir=str(run_dir),
        enable_checkpointing=cfg.get("checkpoints", True),  # false: nor Lightning's default checkpoint callback
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],  # checkpoints whole or absent
    )


def run_card(cfg: DictConfig, module: GANModule) -> dict:
    """The export's model card (restoregan.gans.card): the run's name, network, task, data and iterations; author,
    licence and description from train.yaml's `card:`."""
    given = cfg.get("card") or {}
    return model_card(name=cfg.name, author=given.get("author"), licence=given.get("licence"),
                      description=given.get("description"), arch=OmegaConf.to_container(cfg.generator, resolve=True),
                      task=module.task.name, scale=module.task.scale, training_data=training_data(cfg.get("data")),
                      iterations=int(module.iteration))


def export_generator(cfg: DictConfig, module: GANModule, run_dir: Path) -> Path:
    export = run_dir / "export" / "generator"
    save_export(
        export,
        module.net_g_eval,
        arch=OmegaConf.to_container(cfg.generator, resolve=True),
        meta={
            "task": module.task.config(),
            "scale": module.task.scale,
            "name": cfg.name,
            "iterations": int(module.iteration),
            "card": run_card(cfg, module),
        },
    )
    print(
        f"\nTraining done ({int(module.iteration)} iterations).\n"
        f"  checkpoints: {run_dir / 'checkpoints'}\n"
        f"  exported generator: {export}.safetensors (+ .yaml)\n"
        f"  validation grids: {run_dir / 'images'}\n"
        f"  evaluate: python evaluate.py ckpt={export}.safetensors {module.task.evaluate_hint} "
        f"out_dir={run_dir / 'eval'}"
    )
    return export


def train(cfg: DictConfig) -> TrainResult:
    """One run, one writer: the run folder's lock (src/training/lock.py) is held from before anything is written
    there until train() returns or raises."""
    check_schedule(cfg)
    check_run_outputs(cfg)  # nothing this run writes may replace what it reads (init_from, ckpt_path, data)
    set_max_pixels(cfg.max_pixels)  # before the datasets read any header; workers inherit it via the environment
    with hold_run(Path(cfg.run_dir)):
        return _train(cfg)


def _train(cfg: DictConfig) -> TrainResult:
    os.environ.setdefault("WANDB_MODE", "offline")
    # The EMA generator and frozen perceptual backbones are in eval mode by design; the pytree notice is
    # Lightning talking to a newer torch. Neither is actionable for a user.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Lightning's notice on every resume (a fresh start over an existing run is refused before it)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    run_dir = Path(cfg.run_dir)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, run_dir, cfg.overwrite)
    # read once, weights-only (a hostile file is refused here), memory-mapped: its resume state now, its fit below
    checkpoint = torch_load_weights_only(ckpt_path, mmap=True) if ckpt_path else None
    resume = read_resume_state(ckpt_path, checkpoint) if ckpt_path else None
    remove_checkpoint_temps(run_dir / "checkpoints")  # a killed run's half-written checkpoints
    if ckpt_path is None and cfg.overwrite and launching_rank():
        clear_earlier_checkpoints(run_dir / "checkpoints")  # check_run_outputs kept init_from out of there
    pl.seed_everything(cfg.seed, workers=True)

    module = build_module(cfg)
    if checkpoint is not None:  # another run's networks: refused now, before a logger or .hydra/ writes anything
        module.check_checkpoint_fits(checkpoint, ckpt_path)
        del checkpoint  # Lightning loads it again inside fit, onto the module
    datamodule = instantiate(cfg.data)
    # a mistyped health.below_baseline.metric / .baseline now, not at the first validation
    health = HealthConfig.from_config(cfg.get("health"))
    check_rule_names_up_front(health, module.task, getattr(datamodule, "val_set", None))
    logger = build_logger(cfg, resume)
    trainer = build_trainer(cfg, run_dir, build_callbacks(cfg, run_dir, health), logger)
    if launching_rank():
        save_run_config(run_dir, cfg)  # .hydra/: Hydra itself writes nothing into the run folder (train.yaml)
    # weights_only: resuming reads tensors and plain data, never unpickles code from the checkpoint
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if not cfg.get("checkpoints", True):  # debug=...: nothing written to resume from or hand on
        streak = next(cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor)).open_streak()
        if streak is not None:
            log.warning(f"{streak} when training ended at iteration {int(module.iteration)}")
        print(f"\nTraining done ({int(module.iteration)} iterations); checkpoints=false: no checkpoint, no export.\n"
              f"  logs and validation grids: {run_dir}")
        return TrainResult(run_dir, run_dir / "checkpoints" / "last.ckpt", None, module, metrics)
    finish(trainer, module, run_dir)

    export = export_generator(cfg, module, run_dir) if trainer.is_global_zero else None
    return TrainResult(run_dir, run_dir / "checkpoints" / "last.ckpt", export, module, metrics)
