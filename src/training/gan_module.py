"""One task-agnostic GAN LightningModule: stage 1 pixel pretraining, stage 2 adversarial fine-tuning.

Manual optimization (two optimizers). `self.iteration` counts batches (not optimizer steps: Lightning's
global_step advances once per optimizer step, i.e. by 2 per batch in the GAN stage) and decides the stage,
so a resumed run continues in the stage it was killed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from restoregan.losses.weighted import WeightedSum
from restoregan.training.ema import make_ema, update_ema, warmup_decay
from restoregan.training.grid import save_grid

FORMAT_VERSION = 1


class GANModule(pl.LightningModule):
    def __init__(
        self,
        net_g: nn.Module,
        net_d: nn.Module | None,
        task: Any,
        pretrain_loss: WeightedSum,
        content_loss: WeightedSum,
        adversarial_loss: nn.Module | None,
        adversarial_weight: float,
        optimizer_g: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler_g: Callable[..., Any] | None = None,
        scheduler_d: Callable[..., Any] | None = None,
        pretrain_iters: int = 0,
        ema_decay: float | None = 0.999,
        grad_clip: float | None = None,
        generator_config: dict | None = None,
        grid_dir: str | None = None,
        grid_images: int = 4,
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

    # --- stages -----------------------------------------------------------------------------------
    @property
    def gan_active(self) -> bool:
        """Stage 2 once pretraining is done, if the config has a discriminator and an adversarial term."""
        return (
            self.net_d is not None
            and self.adversarial_loss is not None
            and self.hparams.adversarial_weight > 0
            and int(self.iteration) >= self.hparams.pretrain_iters
        )

    @property
    def net_g_eval(self) -> nn.Module:
        """The generator used for validation and export: the EMA when there is one."""
        return self.net_g_ema if self.net_g_ema is not None else self.net_g

    def forward(self, x: Tensor) -> Tensor:
        return self.net_g_eval(x)

    # --- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self._optimizers()
        real_target = self.task.target(batch)
        output = self.net_g(self.task.inputs(batch))  # (b, c, H, W)

        gan_stage = self.gan_active
        if not gan_stage:
            l_g, parts = self.pretrain_loss(output, real_target)
            self._step(opt_g, l_g)
            self._log_parts("g", parts, l_g)
        else:
            real, fake = self.task.discriminator_pair(batch, output)

            # --- discriminator ---
            self.toggle_optimizer(opt_d)
            l_d, d_logs = self.adversarial_loss.d_loss(self.net_d, real, fake.detach())  # detach: D step must not reach G
            self._step(opt_d, l_d)
            self.untoggle_optimizer(opt_d)

            # --- generator ---
            self.toggle_optimizer(opt_g)
            l_content, parts = self.content_loss(output, real_target)
            l_adv = self.adversarial_loss.g_loss(self.net_d, real, fake)
            l_g = l_content + self.hparams.adversarial_weight * l_adv
            self._step(opt_g, l_g)
            self.untoggle_optimizer(opt_g)

            self._log_parts("g", parts, l_g)
            self.log("train/g_adv", l_adv.detach(), prog_bar=False)
            self.log("train/d_loss", l_d.detach())
            for key, value in d_logs.items():
                self.log(f"train/{key}", value.detach())

        for sched in self._schedulers():
            sched.step()
        if self.net_g_ema is not None:
            update_ema(self.net_g_ema, self.net_g, warmup_decay(self.hparams.ema_decay, int(self.iteration)))
        self.log("train/stage", 2.0 if gan_stage else 1.0)
        self.iteration += 1

    def _step(self, opt: torch.optim.Optimizer, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {int(self.iteration)}")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt.step()

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
        # configure_optimizers returns the G scheduler first; the D one only advances while D trains.
        return [s for s, is_d in zip(scheds, self._scheduler_is_d) if self.gan_active or not is_d]

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
        net = self.net_g_eval
        output = net(self.task.inputs(batch)).clamp(0, 1)
        target = self.task.target(batch)
        scores = self.task.metrics(output, target)
        baseline_scores = {
            name: self.task.metrics(base, target) for name, base in self.task.baselines(batch).items()
        }
        n = target.shape[0]
        for key, value in scores.items():
            self.log(f"val/{key}", value, batch_size=n, sync_dist=True, prog_bar=key == "psnr")
        for name, b_scores in baseline_scores.items():
            for key, value in b_scores.items():
                self.log(f"val/{key}_{name}", value, batch_size=n, sync_dist=True)
        if batch_idx * n < self.hparams.grid_images and self.global_rank == 0:
            self._grid_rows.append([(label, img[0].detach().cpu()) for label, img in self.task.grid_columns(batch, output)])

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
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Self-describing checkpoints: evaluate.py / infer.py rebuild the generator without the config.
        checkpoint["restoregan"] = {
            "generator": self.hparams.generator_config,
            "task": self.task.name,
            "scale": getattr(self.task, "scale", 1),
            "format_version": FORMAT_VERSION,
        }


