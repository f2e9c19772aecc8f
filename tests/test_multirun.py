"""Hydra as its users expect it of train.py: `-m` sweeps (one run folder per job), the Optuna sweeper
(hparams_search=), debug=fast (nothing kept in runs/), and the whole composed config in the loggers' hparams."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from restoregan import cli
from train_utils import ROOT, tiny_overrides


def _train(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python train.py ARGS` as a user runs it, in `cwd`."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    environ.pop(cli.TRACEBACK_ENV, None)
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _validations(run: Path) -> list[float]:
    """val/psnr of each validation, in order, from the run's metrics.csv."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [float(row["val/psnr"]) for row in csv.DictReader(f) if row.get("val/psnr")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_multirun_gives_each_job_its_own_run_folder_and_config(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _train(["-m", *tiny_overrides(run_dir), "seed=1,2"], tmp_path)
    jobs = [run_dir / "multirun" / str(n) for n in (0, 1)]
    for job, seed in zip(jobs, (1, 2)):
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / "export" / "generator.safetensors").is_file()
        assert f"seed={seed}" in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        # the whole composed config went to the CSV logger (Lightning writes it to hparams.yaml), this job's own
        hparams = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())
        assert hparams["seed"] == seed and Path(hparams["run_dir"]).resolve() == job.resolve()
        assert hparams["trainer"]["accelerator"] == "cpu" and hparams["task"]["scale"] == 4
        assert hparams["generator"]["_target_"] and hparams["loss"]["adversarial"]["weight"] == 2.0e-4  # sr_quickstart's own, over pixel_gan's 1e-3
        assert len(_validations(job)) == 2
    assert _sha(jobs[0] / "export" / "generator.safetensors") != _sha(jobs[1] / "export" / "generator.safetensors")
    assert (run_dir / "multirun" / "multirun.yaml").is_file()  # Hydra's record of the sweep
    assert not (run_dir / "checkpoints").exists()  # nothing trained into the sweep's parent folder


@pytest.mark.slow
def test_debug_fast_trains_a_few_steps_and_keeps_nothing_in_runs(tmp_path: Path) -> None:
    small = [o for o in tiny_overrides(tmp_path) if o.split("=")[0].lstrip("+") in (
        "experiment", "data.crop_size", "data.batch_size", "data.val.crop_size", "pretrained_backbones",
        "trainer.accelerator", "trainer.enable_progress_bar")]  # debug=fast's own schedule and run_dir, not the test's
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = _train([*small, "debug=fast"], tmp_path, TMPDIR=str(temp))
    assert not (tmp_path / "runs").exists()
    run = temp / "restoregan-debug" / "sr_quickstart"
    assert "Training done (4 iterations)" in proc.stdout
    assert len(_validations(run)) == 1
    assert not (run / "checkpoints").exists() and not (run / "export").exists()
    assert not list(run.rglob("*.ckpt")) and not list(run.rglob("*.safetensors"))


@pytest.mark.slow
def test_optuna_sweep_maximises_the_last_validation_psnr(tmp_path: Path) -> None:
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        pytest.skip("hydra-optuna-sweeper is not installed (pip install '.[optuna]')")
    run_dir = tmp_path / "run"
    _train(["-m", *tiny_overrides(run_dir), "hparams_search=sr_optuna", "hydra.sweeper.n_trials=2"], tmp_path)
    results = yaml.safe_load((run_dir / "multirun" / "optimization_results.yaml").read_text())
    # what each trial's own log says its last validation was; the sweeper saw what train returned
    last = [_validations(run_dir / "multirun" / str(n))[-1] for n in (0, 1)]
    assert results["best_value"] == pytest.approx(max(last), rel=1e-6)
    assert set(results["best_params"]) == {"model.optimizer_g.lr", "model.optimizer_d.lr", "loss.adversarial.weight"}


def test_wandb_logger_gets_the_whole_composed_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")  # a no-op run: no network, no files; its config still records
    from restoregan.training.loggers import ResumableWandbLogger, log_config
    from train_utils import compose_train

    cfg = compose_train(tiny_overrides(tmp_path) + ["logger=wandb"])
    logger = ResumableWandbLogger(project="restoregan", save_dir=str(tmp_path), name="t")
    log_config(logger, cfg)
    try:
        logged = dict(logger.experiment.config)
    finally:  # a run left open would be reused by every later WandbLogger (wandb.run)
        import wandb

        wandb.finish()
    assert logged == OmegaConf.to_container(cfg, resolve=True)
    assert logged["logger"]["_target_"].endswith("ResumableWandbLogger") and logged["run_dir"] == str(tmp_path)
