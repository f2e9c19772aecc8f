"""Training watches its own health: each check provoked for real on tiny runs stops training in one line naming
the net (or loss term, or metric), the iteration and the last good checkpoint, which keeps the healthy state;
no export is written. The healthy quickstarts train with the default settings in their own smoke tests
(test_train.py, test_colorize_train.py, test_interp_train.py, test_restore_train.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from restoregan.training.health import HealthConfig, HealthMonitor, TrainingHealthError
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def _train_expecting_stop(overrides: list[str], monkeypatch, *callbacks: pl.Callback) -> str:
    import restoregan.training.run as run_mod

    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: list(callbacks))
    with pytest.raises(TrainingHealthError) as info:
        train(compose_train(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def _assert_last_checkpoint_healthy(run_dir: Path, iteration: int, message: str, bounded: bool = True) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"last good checkpoint: {last} (iteration {iteration})" in message
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert state["iteration"].item() == iteration
    floats = [t for t in state.values() if t.is_floating_point()]
    assert all(torch.isfinite(t).all() and (not bounded or t.abs().max() < 1e12) for t in floats)
    assert not (run_dir / "export").exists(), "an unhealthy run must not export"
    assert not (run_dir / ".lock").exists(), "the run's lock is released after the stop"


def test_diverged_discriminator_buffers_stop_the_run(tmp_path: Path, monkeypatch) -> None:
    # the case: D's learning rate 1e6 blows its BatchNorm statistics up while every loss stays finite
    overrides = tiny_overrides(tmp_path) + ["pretrain_iters=1", "gan_iters=1", "val_every=1",
                                            "model.optimizer_d.lr=1e6"]
    message = _train_expecting_stop(overrides, monkeypatch)
    assert message.startswith("net_d: buffer bn") and "running_" in message and "at iteration 2;" in message
    _assert_last_checkpoint_healthy(tmp_path, 1, message)


class _SetInf(pl.Callback):
    """Writes inf into one of D's BatchNorm running variances after a given batch."""

    def __init__(self, after_iteration: int) -> None:
        self.after = after_iteration

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if int(module.iteration) == self.after:
            module.net_d.bn0_1.running_var[0] = float("inf")


def test_inf_buffer_after_the_last_validation_stops_before_the_final_checkpoint(tmp_path: Path, monkeypatch) -> None:
    # validation at iteration 2 only; the buffer goes bad at iteration 3, the run ends at 3: train() must not
    # write its final last.ckpt or the export
    overrides = tiny_overrides(tmp_path) + ["gan_iters=1"]
    message = _train_expecting_stop(overrides, monkeypatch, _SetInf(after_iteration=3))
    assert message.startswith("net_d: buffer bn0_1.running_var holds inf at iteration 3;")
    _assert_last_checkpoint_healthy(tmp_path, 2, message)


def test_saturated_discriminator_stops_after_its_validations(tmp_path: Path, monkeypatch) -> None:
    overrides = tiny_overrides(tmp_path) + [
        "pretrain_iters=1", "gan_iters=3", "val_every=1", "model.optimizer_d.lr=1e6",
        "health.finite=false", "health.d_saturation.validations=2",
    ]
    message = _train_expecting_stop(overrides, monkeypatch)
    assert message.startswith("net_d: saturated for 2 validations in a row at iteration 4")
    # iteration 2 logged D's outputs of its first step (healthy): its checkpoint is the last good one; the
    # saturated validation at 3 wrote none (health.finite is off here, so its weights are not bounded)
    _assert_last_checkpoint_healthy(tmp_path, 2, message, bounded=False)


class _RaiseLearningRate(pl.Callback):
    """G's optimizer jumps to lr 1 after a given batch: the generator diverges after a healthy start."""

    def __init__(self, after_iteration: int) -> None:
        self.after = after_iteration

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if int(module.iteration) == self.after:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 1.0


def test_validation_below_its_baseline_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    overrides = tiny_overrides(tmp_path) + [
        "pretrain_iters=3", "gan_iters=0", "val_every=1", "health.below_baseline.validations=2",
    ]
    message = _train_expecting_stop(overrides, monkeypatch, _RaiseLearningRate(after_iteration=1))
    assert message.startswith("val/psnr: ") and "below val/psnr_bicubic" in message
    assert "for 2 validations in a row at iteration 3;" in message
    _assert_last_checkpoint_healthy(tmp_path, 1, message)


class _Poison(pl.Callback):
    """Makes one batch's target NaN (-> g_pix) or D's output layer NaN (-> d_loss) at a given iteration."""

    def __init__(self, what: str, at_iteration: int) -> None:
        self.what, self.at = what, at_iteration

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if int(module.iteration) != self.at:
            return
        if self.what == "target":
            batch["gt"].fill_(float("nan"))
        else:
            with torch.no_grad():
                module.net_d.linear2.bias.fill_(float("nan"))


@pytest.mark.parametrize(
    ("what", "pretrain_iters", "expected"),
    [
        ("target", 2, "loss term g_pix (L1Loss) is nan at iteration 1;"),  # pixel pretraining
        ("d_output", 1, "loss d_loss (train/d_real nan, train/d_fake nan) is nan at iteration 1;"),  # GAN phase
    ],
)
def test_nonfinite_loss_names_its_term_and_iteration(
    what: str, pretrain_iters: int, expected: str, tmp_path: Path, monkeypatch
) -> None:
    overrides = tiny_overrides(tmp_path) + [f"pretrain_iters={pretrain_iters}", "gan_iters=1", "val_every=1"]
    message = _train_expecting_stop(overrides, monkeypatch, _Poison(what, at_iteration=1))
    assert message.startswith(expected)
    assert message.endswith(f"last good checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'} (iteration 1)")
    assert not (tmp_path / "export").exists()


# --- the rules themselves, on logged values ------------------------------------------------------------------
def _validate(monitor: HealthMonitor, psnr: float, bicubic: float, d_real: float | None = None, step: int = 0) -> bool:
    """One validation through the monitor; True if it kept ModelCheckpoint from saving (a suspect state)."""
    metrics = {"val/psnr": torch.tensor(psnr), "val/psnr_bicubic": torch.tensor(bicubic)}
    if d_real is not None:
        metrics |= {"train/d_real": torch.tensor(d_real), "train/d_fake": torch.tensor(-d_real)}
    checkpoint = SimpleNamespace(_last_global_step_saved=-1, dirpath=None)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics=metrics, checkpoint_callback=checkpoint,
                              checkpoint_callbacks=[checkpoint], callbacks=[monitor], global_step=step, world_size=1)
    module = SimpleNamespace(iteration=torch.tensor(step), baseline_names=["bicubic"], net_g=torch.nn.Linear(2, 2))
    monitor.on_validation_end(trainer, module)
    return checkpoint._last_global_step_saved == step


def test_default_rules_let_a_healthy_run_through() -> None:
    monitor = HealthMonitor(HealthConfig())
    # a run from random weights starts far below bicubic: not a fall, never counted
    assert not any(_validate(monitor, p, 28.1, step=i) for i, p in enumerate([9.0, 14.0, 19.0]))
    # pretraining reaches the baseline; a GAN phase costs PSNR and D logits swing by tens: within the defaults
    for i, (psnr, d) in enumerate([(28.5, None), (29.3, None), (27.0, 8.0), (24.0, -35.0), (23.5, 60.0)], start=3):
        assert not _validate(monitor, psnr, 28.1, d, step=i)


def test_streaks_count_consecutive_validations_only() -> None:
    monitor = HealthMonitor(HealthConfig(baseline_validations=2, saturation_validations=2))
    assert not _validate(monitor, 28.0, 28.1, step=1)  # arms the baseline check
    assert _validate(monitor, 20.0, 28.1, step=2)  # suspect: no checkpoint of it
    assert not _validate(monitor, 27.0, 28.1, step=3)  # recovered: the streak starts again
    assert _validate(monitor, 20.0, 28.1, step=4)
    with pytest.raises(TrainingHealthError, match=r"^val/psnr: 20\.000, below val/psnr_bicubic \(28\.100\)"):
        _validate(monitor, 20.0, 28.1, step=5)
    monitor = HealthMonitor(HealthConfig(baseline_validations=0, saturation_validations=2))
    assert _validate(monitor, 28.0, 28.1, d_real=float("nan"), step=1)  # non-finite D output counts as saturated
    with pytest.raises(TrainingHealthError, match="net_d: saturated for 2 validations"):
        _validate(monitor, 28.0, 28.1, d_real=5e3, step=2)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("health.d_saturation.validations=-1", "health.d_saturation.validations=-1: expected a whole number"),
        ("health.below_baseline.margin=abc", "health.below_baseline.margin=abc: expected a number >= 0"),
        ("health.enabled=maybe", "health.enabled=maybe: expected true or false"),
        ("health.max_abs=0", "health.max_abs=0: expected a positive number or null"),
    ],
)
def test_bad_health_settings_are_refused_before_training(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        train(compose_train(tiny_overrides(tmp_path) + [override]))
    assert not tmp_path.exists() or not any(tmp_path.iterdir()), "nothing is written before the checks"


def test_unknown_health_metric_is_named(tmp_path: Path) -> None:
    expected = r"^health\.below_baseline\.metric=lpips: the task logs no val/lpips \(it logs psnr"
    with pytest.raises(ValueError, match=expected):
        train(compose_train(tiny_overrides(tmp_path) + ["pretrain_iters=1", "gan_iters=0", "val_every=1",
                                                        "health.below_baseline.metric=lpips"]))
