"""One task-agnostic GAN LightningModule, three phases in one run (any of them may be 0 iterations):

1. `pretrain_iters`: generator only, on the `pretrain` loss (the PSNR-oriented model);
2. `d_pretrain_iters`: discriminator only, against the frozen generator (DeOldify's "NoGAN": the GAN phase
   then starts with a critic that already tells the generator's output from real images);
3. `gan_iters`: both, generator on the `content` loss plus the adversarial term.

Without a discriminator or adversarial term the run stays in phase 1 throughout. Manual optimization (two
optimizers). `self.iteration` counts batches (not optimizer steps: Lightning's global_step advances once per
optimizer step, i.e. by 2 per batch in phase 3) and decides the phase, so a resumed run continues in the phase
it was killed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from restoregan.gans.checkpoint import FORMAT_VERSION, CheckpointError
from restoregan.losses.weighted import NonFiniteLossError, WeightedSum
from restoregan.tasks import legacy_task
from restoregan.tasks.base import Task, finite_mean
from restoregan.training.ema import make_ema, update_ema, warmup_decay
from restoregan.grids import save_grid
from restoregan.training.health import TrainingHealthError, last_good_checkpoint


class GANModule(pl.LightningModule):
    def __init__(
        self,
        net_g: nn.Module,
        net_d: nn.Module | None,
        task: Task,
        pretrain_loss: WeightedSum,
        content_loss: WeightedSum,
        adversarial_loss: nn.Module | None,
        adversarial_weight: float,
        optimizer_g: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler_g: Callable[..., Any] | None = None,
        scheduler_d: Callable[..., Any] | None = None,
        pretrain_iters: int = 0,
        d_pretrain_iters: int = 0,
        ema_decay: float | None = 0.999,
        grad_clip: float | None = None,
        generator_config: dict | None = None,
        grid_dir: str | None = None,
        grid_images: int = 4,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # Networks, losses and optimizer factories stay out of hparams: checkpoints must load with
        # torch.load(weights_only=True), which refuses pickled callables.
        self.save_hyperparameters(
            ignore=["net_g", "net_d", "task", "pretrain_loss", "content_loss", "adversarial_loss",
                    "optimizer_g", "optimizer_d", "scheduler_g", "scheduler_d"]
        )
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.scheduler_g, self.scheduler_d = scheduler_g, scheduler_d
        self.automatic_optimization = False
        self.net_g = net_g
        self.net_d = net_d
        self.net_g_ema = make_ema(net_g) if ema_decay else None
        self.task = task
        self.pretrain_loss = pretrain_loss
        self.content_loss = content_loss
        self.adversarial_loss = adversarial_loss
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        # A host copy of `iteration`: reading the buffer on a GPU (int(tensor)) waits for the device, several
        # times a step; this one is synced from the buffer once when training starts (after a resume's load).
        self._iteration_host: int | None = None
        self.register_load_state_dict_post_hook(_forget_host_iteration)
        self.baseline_names: list[str] = []  # the task's baselines, as validation logs them (the health check's)

    def setup(self, stage: str) -> None:
        # Speed switches (bench/perf_training.py measures each; docs/PERFORMANCE.md). channels_last: NHWC weights,
        # which convolutions propagate to their outputs (tensor cores on a GPU prefer it). compile: Module.compile
        # compiles forward in place, so state-dict keys, checkpoints and exports are unchanged.
        if self.hparams.channels_last:
            for net in (self.net_g, self.net_d, self.net_g_ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            for net in (self.net_g, self.net_d):
                if net is not None:
                    net.compile()

    # --- phases ---------------------------------------------------------------------------------------
    G_PRETRAIN, D_PRETRAIN, GAN = 1, 2, 3

    @property
    def has_gan(self) -> bool:
        return self.net_d is not None and self.adversarial_loss is not None and self.hparams.adversarial_weight > 0

    @property
    def phase(self) -> int:
        it, pre = self._iter, self.hparams.pretrain_iters
        if not self.has_gan or it < pre:
            return self.G_PRETRAIN
        return self.D_PRETRAIN if it < pre + self.hparams.d_pretrain_iters else self.GAN

    @property
    def _iter(self) -> int:
        if self._iteration_host is None:
            self._iteration_host = int(self.iteration)
        return self._iteration_host

    def on_train_start(self) -> None:
        self._iteration_host = int(self.iteration)  # a resumed run's loaded value

    @property
    def gan_active(self) -> bool:
        """Whether the generator trains against the discriminator (phase 3)."""
        return self.phase == self.GAN

    @property
    def net_g_eval(self) -> nn.Module:
        """The generator used for validation and export: the EMA when there is one."""
        return self.net_g_ema if self.net_g_ema is not None else self.net_g

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.net_g_eval(*inputs)

    # --- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self._optimizers()
        real_target = self.task.target(batch)
        phase = self.phase
        if phase == self.G_PRETRAIN:
            output, extra = self._generate(batch)  # e.g. (b, 3, H, W)
            l_g, parts = self._loss(self.pretrain_loss, output, real_target)
            if extra:  # the task's own terms (a temporal restorer's flow loss), checked by _step
                l_g = l_g + sum(extra.values())
                parts = {**parts, **extra}
            # _loss checked its sum: no second host sync unless the task added terms
            self._step(opt_g, l_g, "g_loss", parts, checked=not extra)
            if self._logging_step():
                self._log_parts("g", parts, l_g)
        elif phase == self.D_PRETRAIN:
            with torch.no_grad():  # the generator is frozen: no graph, no gradients
                output = self.task.generate(self.net_g, batch)
            self._train_d(opt_d, *self.task.discriminator_pair(batch, output))
        else:
            output, extra = self._generate(batch)
            real, fake = self.task.discriminator_pair(batch, output)
            self._train_d(opt_d, real, fake.detach())  # detach: the D step must not reach G

            # --- generator ---
            self.toggle_optimizer(opt_g)
            l_content, parts = self._loss(self.content_loss, output, real_target)
            l_adv = self.adversarial_loss.g_loss(self.net_d, real, fake)
            l_g = l_content + self.hparams.adversarial_weight * l_adv + sum(extra.values())
            parts = {**parts, **extra}
            self._step(opt_g, l_g, "g_loss", {"g_adv": l_adv, **extra})
            self.untoggle_optimizer(opt_g)
            if self._logging_step():
                self._log_parts("g", parts, l_g)
                self.log("train/g_adv", l_adv.detach(), prog_bar=False)

        for sched in self._schedulers():
            sched.step()
        if self.net_g_ema is not None and phase != self.D_PRETRAIN:
            update_ema(self.net_g_ema, self.net_g, warmup_decay(self.hparams.ema_decay, self._iter))
        if self._logging_step():
            self.log("train/phase", float(phase))
        self.iteration += 1
        self._iteration_host = self._iter + 1

    def _generate(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's output and the task's own loss terms, when the task has any (optional
        `generate_with_losses`: terms only it can compute, such as a temporal restorer's flow loss)."""
        with_losses = getattr(self.task, "generate_with_losses", None)
        if with_losses is None:
            return self.task.generate(self.net_g, batch), {}
        return with_losses(self.net_g, batch)

    def _train_d(self, opt_d: torch.optim.Optimizer, real: Tensor, fake: Tensor) -> None:
        # --- discriminator ---
        self.toggle_optimizer(opt_d)
        l_d, d_logs = self.adversarial_loss.d_loss(self.net_d, real, fake)
        self._step(opt_d, l_d, "d_loss", d_logs, prefix="train/")
        self.untoggle_optimizer(opt_d)
        if self._logging_step():
            self.log("train/d_loss", l_d.detach())
            for key, value in d_logs.items():
                self.log(f"train/{key}", value.detach())

    def _loss(self, loss: WeightedSum, output: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's weighted loss; a non-finite term stops training naming it as logged (g_pix, ...)."""
        try:
            return loss(output, target)
        except NonFiniteLossError as err:
            what = (f"loss term g_{err.term} ({type(loss.fns[err.term]).__name__})" if err.term is not None
                    else "loss g_loss (the weighted sum of finite terms: overflow)")
            raise TrainingHealthError(self._stop_message(what, err.value)) from None

    def _step(
        self, opt: torch.optim.Optimizer, loss: Tensor, name: str, parts: dict[str, Tensor] | None = None,
        prefix: str = "", checked: bool = False,
    ) -> None:
        """One optimizer step on `loss`; a non-finite loss stops training naming `name` or its non-finite `parts`
        (named `prefix` + key). `checked`: the caller has already checked this loss (each check is a host sync)."""
        if not checked and not torch.isfinite(loss):
            # name the culprit: a non-finite part (the adversarial term, D's outputs), else the total itself
            bad = {f"{prefix}{k}": float(v) for k, v in (parts or {}).items() if not torch.isfinite(v).all()}
            if name == "g_loss" and "g_adv" in bad:
                raise TrainingHealthError(self._stop_message("loss term g_adv (adversarial)", bad["g_adv"]))
            detail = f" ({', '.join(f'{k} {v}' for k, v in bad.items())})" if bad else ""
            raise TrainingHealthError(self._stop_message(f"loss {name}{detail}", loss.item()))
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt.step()

    def _stop_message(self, what: str, value: float) -> str:
        return f"{what} is {value} at iteration {self._iter}; {last_good_checkpoint(self._trainer)}"

    def _logging_step(self) -> bool:
        """Whether Lightning writes step metrics after this batch (every trainer.log_every_n_steps). Values
        logged on other steps are overwritten unseen, and each self.log costs about half a millisecond of
        Python: 3-5% of a quickstart's step, more of a GPU step (bench/perf_training.py), so those skip it."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return True if connector is None else bool(connector.should_update_logs)

    def _log_parts(self, prefix: str, parts: dict[str, Tensor], total: Tensor) -> None:
        self.log(f"train/{prefix}_loss", total.detach(), prog_bar=True)
        for name, value in parts.items():
            self.log(f"train/{prefix}_{name}", value.detach())

    def _optimizers(self) -> tuple[Any, Any]:
        opts = self.optimizers()
        if not isinstance(opts, (list, tuple)):
            return opts, None
        return opts[0], opts[1]

    def _schedulers(self) -> list[Any]:
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        scheds = scheds if isinstance(scheds, (list, tuple)) else [scheds]
        # configure_optimizers returns the G scheduler first; each advances only while its network trains.
        phase = self.phase
        trains = {False: phase != self.D_PRETRAIN, True: phase != self.G_PRETRAIN}
        return [s for s, is_d in zip(scheds, self._scheduler_is_d) if trains[is_d]]

    def configure_optimizers(self) -> Any:
        optimizers = [self.optimizer_g(self.net_g.parameters())]
        schedulers, self._scheduler_is_d = [], []
        if self.scheduler_g is not None:
            schedulers.append(self.scheduler_g(optimizers[0]))
            self._scheduler_is_d.append(False)
        if self.net_d is not None and self.optimizer_d is not None:
            optimizers.append(self.optimizer_d(self.net_d.parameters()))
            if self.scheduler_d is not None:
                schedulers.append(self.scheduler_d(optimizers[1]))
                self._scheduler_is_d.append(True)
        return optimizers, schedulers

    # --- validation -------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # task.metrics is what evaluate.py scores each image with: validation's val/psnr is the same number
        output = self.task.generate(self.net_g_eval, batch).clamp(0, 1)
        primary = self.task.metric_columns[0][0]
        for key, values in self.task.metrics(output, batch).items():
            self._log_mean(f"val/{key}", values, prog_bar=key == primary)
        baselines = self.task.baselines(batch)
        self.baseline_names = list(baselines)
        for name, base in baselines.items():
            for key, values in self.task.metrics(base, batch).items():
                self._log_mean(f"val/{key}_{name}", values)
        n = output.shape[0]
        if batch_idx * n < self.hparams.grid_images and self.global_rank == 0:
            self._grid_rows.append([(label, img[0].detach().cpu()) for label, img in self.task.grid_columns(batch, output)])

    def _log_mean(self, name: str, values: Tensor, prog_bar: bool = False) -> None:
        """Log a batch's per-item scores so that the validation's value is the mean over the finite items of the
        whole set, as evaluate.py reports it (`finite_mean`): Lightning weights each batch by `batch_size`, here its
        number of finite items; a batch of identical images only (PSNR inf, no information) adds nothing. A NaN
        (a broken output) is logged as NaN, so the validation's value is NaN and the health check sees it."""
        # float64 tensors: a Python float would be stored and averaged as float32, 1e-7 off evaluate.py's means
        finite = int(torch.isfinite(values).sum())
        if bool(torch.isnan(values).any()):
            self.log(name, torch.tensor(float("nan"), dtype=torch.float64), batch_size=1, sync_dist=True,
                     prog_bar=prog_bar)
        elif finite:
            mean = torch.tensor(finite_mean(values.tolist()), dtype=torch.float64)
            self.log(name, mean, batch_size=finite, sync_dist=True, prog_bar=prog_bar)

    def on_validation_epoch_start(self) -> None:
        self._grid_rows: list[list[tuple[str, Tensor]]] = []

    def on_validation_epoch_end(self) -> None:
        if self.global_rank != 0 or not self._grid_rows or self.trainer.sanity_checking:
            return
        grid_dir = Path(self.hparams.grid_dir or Path(self.trainer.default_root_dir) / "images")
        path = grid_dir / f"val_iter{int(self.iteration):07d}.png"
        grid = save_grid(self._grid_rows, path)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # wandb
                logger.log_image(key="val/grid", images=[grid], step=self.global_step)

    # --- checkpoints ------------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Before Lightning loads the weights: a checkpoint of another run's networks would otherwise end in a
        # 60-line "Error(s) in loading state_dict"; say which file and what differs in one line.
        self.check_checkpoint_fits(checkpoint, getattr(self._trainer, "ckpt_path", None) or "the checkpoint")

    def check_checkpoint_fits(self, checkpoint: dict, path: str | Path) -> None:
        """A checkpoint to resume from is of this run's task (its class) and networks; else one line naming `path`.
        train.py also calls it before anything is written into a new run folder."""
        saved = checkpoint.get("restoregan") if isinstance(checkpoint.get("restoregan"), dict) else {}
        theirs, ours = saved_task_target(saved), self.task.config()["_target_"]
        if theirs is not None and theirs != ours:
            raise CheckpointError(f"{path}: a checkpoint of a {theirs} run; this run's task is {ours} (resume with "
                                  "a checkpoint of this run)")
        problem = state_dict_mismatch(checkpoint.get("state_dict"), self.state_dict())
        if problem:
            generator = saved.get("generator")
            theirs = generator.get("_target_", "?") if isinstance(generator, dict) else "?"
            ours = (self.hparams.generator_config or {}).get("_target_", "?")
            raise CheckpointError(f"{path}: its networks do not fit this run's (generator {theirs} there, {ours} "
                                  f"here): {problem}; resume with a checkpoint of this run's configuration")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Self-describing checkpoints: evaluate.py / infer.py rebuild the generator and the task without the config.
        checkpoint["restoregan"] = {
            "generator": self.hparams.generator_config,
            "task": self.task.config(),
            "scale": self.task.scale,
            "format_version": FORMAT_VERSION,
        }


def saved_task_target(saved: dict) -> str | None:
    """The task class a checkpoint's description names (format 2: its config's `_target_`; format 1: the class of
    the built-in task its word meant, else the word itself); None when it names none."""
    task = saved.get("task")
    if isinstance(task, dict):
        return str(task.get("_target_"))
    if isinstance(task, str):
        try:
            config = legacy_task(task, {**saved, "scale": saved.get("scale", 1)})
        except (TypeError, ValueError):  # settings beside the word that no task reads: compare the word itself
            config = None
        return config["_target_"] if config is not None else task
    return None


def state_dict_mismatch(saved: Any, expected: dict[str, Tensor]) -> str | None:
    """The first difference between a checkpoint's state dict and the module's, in words; None if they fit."""
    if not isinstance(saved, dict):
        return "it holds no state_dict"
    missing = [k for k in expected if k not in saved]
    if missing:
        return f"{len(missing)} tensors missing, e.g. {missing[0]}"
    unexpected = [k for k in saved if k not in expected]
    if unexpected:
        return f"{len(unexpected)} unexpected tensors, e.g. {unexpected[0]}"
    for key, tensor in expected.items():
        other = saved[key]
        if not isinstance(other, Tensor) or other.shape != tensor.shape:
            shape = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
            return f"{key} is {shape} there, {tuple(tensor.shape)} here"
    return None


def _forget_host_iteration(module: GANModule, incompatible_keys: Any) -> None:
    module._iteration_host = None  # the buffer was just loaded (a resume); re-read it when next needed
