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
def _validate(monitor: HealthMonitor, psnr: float, bicubic: float, d_real: float | None = None, step: int = 0,
              d_fake: float | None = None) -> bool:
    """One validation through the monitor; True if it kept ModelCheckpoint from saving (a suspect state).
    D's mean outputs: d_real, and d_fake (-d_real unless given)."""
    metrics = {"val/psnr": torch.tensor(psnr), "val/psnr_bicubic": torch.tensor(bicubic)}
    if d_real is not None:
        d_fake = -d_real if d_fake is None else d_fake
        metrics |= {"train/d_real": torch.tensor(d_real), "train/d_fake": torch.tensor(d_fake)}
    checkpoint = SimpleNamespace(_last_global_step_saved=-1, dirpath=None)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics=metrics, checkpoint_callback=checkpoint,
                              checkpoint_callbacks=[checkpoint], callbacks=[monitor], global_step=step, world_size=1)
    module = SimpleNamespace(iteration=torch.tensor(step), baseline_names=["bicubic"], net_g=torch.nn.Linear(2, 2))
    monitor.on_validation_end(trainer, module)
    return checkpoint._last_global_step_saved == step


def test_rules_on_logged_values() -> None:
    monitor = HealthMonitor(HealthConfig())
    # a run from random weights starts far below bicubic: not a fall, never counted
    assert not any(_validate(monitor, p, 28.1, step=i) for i, p in enumerate([9.0, 14.0, 19.0]))
    # pretraining reaches the baseline; a GAN phase costs PSNR and D's gap swings by tens: within the defaults
    for i, (psnr, d) in enumerate([(28.5, None), (29.3, None), (27.0, 8.0), (24.0, -15.0), (23.5, 25.0)], start=3):
        assert not _validate(monitor, psnr, 28.1, d, step=i)
    # relativistic and WGAN-GP losses ignore a constant added to every D output: outputs that drifted far on a
    # long run, with a healthy gap, are not saturation (they were under the old |mean output| rule)
    assert not any(_validate(monitor, 28.0, 28.1, 5000.0 + i, step=10 + i, d_fake=4990.0) for i in range(4))
    assert _validate(monitor, 28.0, 28.1, 60.0, step=20, d_fake=-60.0)  # a gap of 120: suspect


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
    monitor = HealthMonitor(HealthConfig(baseline_validations=0, saturation_validations=1))
    # outputs beyond max_abs: float32 no longer resolves their gap (here 0), so they count as saturated
    with pytest.raises(TrainingHealthError, match="net_d: saturated for 1 validations"):
        _validate(monitor, 28.0, 28.1, d_real=3e21, step=1, d_fake=3e21)


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


class _Batches(pl.Callback):
    """Counts training batches."""

    def __init__(self) -> None:
        self.count = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.count += 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("health.below_baseline.metric=lpips", r"^health\.below_baseline\.metric=lpips: the task logs no val/lpips "
                                               r"\(it logs psnr, ssim\)$"),
        ("health.below_baseline.baseline=nearest", r"^health\.below_baseline\.baseline=nearest: the task has no such "
                                                   r"baseline \(it has bicubic\)$"),
    ],
)
def test_unknown_health_names_are_refused_before_training(override: str, expected: str, tmp_path: Path,
                                                           monkeypatch) -> None:
    import restoregan.training.run as run_mod

    batches = _Batches()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [batches])
    with pytest.raises(ValueError, match=expected):
        train(compose_train(tiny_overrides(tmp_path) + ["pretrain_iters=4", "gan_iters=0", override]))
    assert batches.count == 0, "checked before the first training step, not at the first validation"
    assert not (tmp_path / ".hydra").exists() and not (tmp_path / "checkpoints").exists()


class _Watch(pl.Callback):
    """After each validation (HealthMonitor's callback runs before it): the monitor's streaks and D's gap."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int, bool, float | None]] = []

    def on_validation_end(self, trainer, module) -> None:
        monitor = next(cb for cb in trainer.callbacks if isinstance(cb, HealthMonitor))
        metrics = trainer.callback_metrics
        gap = float(metrics["train/d_real"] - metrics["train/d_fake"]) if "train/d_real" in metrics else None
        self.seen.append((int(module.iteration), monitor.saturated_streak, monitor.below_streak, monitor.armed, gap))


def test_a_healthy_tiny_run_validates_several_times_and_no_rule_fires(tmp_path: Path, monkeypatch) -> None:
    """The real default rules on a real (tiny) sr_quickstart run: pixel pretraining, then the relativistic GAN
    phase, four validations. No validation may look suspect, and both rules must have been live."""
    import restoregan.training.run as run_mod

    watch = _Watch()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [watch])
    result = train(compose_train(tiny_overrides(tmp_path) + ["pretrain_iters=4", "gan_iters=4", "val_every=2"]))
    assert [s[0] for s in watch.seen] == [2, 4, 6, 8]
    assert all(streak == 0 and below == 0 for _, streak, below, _, _ in watch.seen), watch.seen
    assert watch.seen[0][3], "val/psnr was within the margin of bicubic: the below-baseline rule was live"
    gaps = [gap for *_, gap in watch.seen if gap is not None]
    assert len(gaps) == 2 and all(abs(g) < HealthConfig().saturation_max_gap for g in gaps)  # the GAN validations
    checkpoints = tmp_path / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["state_dict"]["iteration"].item() == 8
    assert not (checkpoints / "final_unhealthy.ckpt").exists() and result.export is not None


def _ema_weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net_g_ema."): v for k, v in state.items() if k.startswith("net_g_ema.")}


def test_a_run_ending_inside_a_streak_exports_its_last_healthy_state(tmp_path: Path, monkeypatch, caplog) -> None:
    # every GAN validation looks saturated (max_gap tiny) but 5 are needed to stop: the one at iteration 4 opens a
    # streak the run ends in. Validation at 2 (pixel phase) was healthy and wrote last.ckpt.
    from restoregan.gans.checkpoint import load_generator

    monkeypatch.setattr("restoregan.training.run.extra_callbacks", lambda: [])
    overrides = tiny_overrides(tmp_path) + ["health.d_saturation.max_gap=1e-9", "health.d_saturation.validations=5"]
    with caplog.at_level("WARNING", logger="restoregan.training.run"):
        result = train(compose_train(overrides))  # no exception: exit 0
    checkpoints = tmp_path / "checkpoints"
    last, final = checkpoints / "last.ckpt", checkpoints / "final_unhealthy.ckpt"
    assert torch.load(last, weights_only=True)["state_dict"]["iteration"].item() == 2  # kept: the healthy state
    assert torch.load(final, weights_only=True)["state_dict"]["iteration"].item() == 4  # nothing lost
    exported = load_generator(f"{result.export}.safetensors")
    assert exported.meta["iterations"] == 2
    healthy, unhealthy = _ema_weights(last), _ema_weights(final)
    exported_state = exported.net.state_dict()
    assert all(torch.equal(exported_state[k], v) for k, v in healthy.items())
    assert not all(torch.equal(exported_state[k], v) for k, v in unhealthy.items())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("net_d: saturated at the last 1 validation(s)")
    assert f"{last} and the export hold the last healthy state (iteration 2)" in warnings[0]
    assert warnings[0].endswith(f"the final state is in {final}")


def test_a_run_ending_inside_a_streak_with_no_healthy_checkpoint_stops(tmp_path: Path, monkeypatch) -> None:
    # straight into the GAN phase: its only validation (iteration 2) is suspect, so this run has no healthy state;
    # the last.ckpt already there belongs to an earlier run that overwrite=true starts over: removed at the start
    # (ckpt_path=last must never resume it), and the suspect state is not saved in its place
    stale = tmp_path / "checkpoints" / "last.ckpt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's checkpoint")
    overrides = tiny_overrides(tmp_path) + ["pretrain_iters=0", "health.d_saturation.max_gap=1e-9",
                                            "health.d_saturation.validations=5", "overwrite=true"]
    message = _train_expecting_stop(overrides, monkeypatch)
    final = tmp_path / "checkpoints" / "final_unhealthy.ckpt"
    assert message.startswith("net_d: saturated at the last 1 validation(s)")
    assert message.endswith(f"when training ended at iteration 2; no healthy checkpoint to export (final state "
                            f"saved as {final})")
    assert torch.load(final, weights_only=True)["state_dict"]["iteration"].item() == 2
    assert not stale.exists()
    assert not (tmp_path / "export").exists()
