"""The command lines: `restoregan-train`, `restoregan-evaluate`, `restoregan-infer`, `restoregan-export` (console
scripts, pyproject.toml) and the repository's train.py / evaluate.py / infer.py, which call the same functions.

The configs are read from the installed package (`restoregan.conf`: the repository's conf/ folder, installed as
package data), so the commands work from any folder. Each `<name>_app` is the @hydra.main function (tests and the
root scripts call it as `main`); `<name>_main` wraps it in `cli.run` (errors in one line on stderr).
Hydra's job name is set in each yaml (hydra.job.name), so it stays train/evaluate/infer whichever file starts it;
hydra.run.dir and job.chdir=false keep relative paths relative to the folder the command runs in.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from restoregan import cli

CONFIG_PATH = "pkg://restoregan.conf"


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
@cli.task
def train_app(cfg: DictConfig) -> float | None:
    """One training run (or one job of a `-m` sweep). Returns `optimized_metric`'s last validation value when the
    config names one (hparams_search=...: the sweeper maximises it), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from restoregan.training.run import train

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        devices = cfg.trainer.get("devices", 1)
        if not (devices in (1, "1") or devices == [0]):
            # Lightning starts the other ranks by running the whole command line again: each would run the sweep
            raise ValueError(f"trainer.devices={devices}: a sweep (-m) trains each job in one process; run "
                             "several-device jobs one by one, without -m")
        # each job of a sweep in its own folder (hydra.sweep.dir/<job number>, conf/train.yaml): two jobs on one
        # run_dir would meet at its lock
        with open_dict(cfg):
            cfg.run_dir = HydraConfig.get().runtime.output_dir
    result = train(cfg)
    return result.metric(cfg.get("optimized_metric"))


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", version_base="1.3")
@cli.task
def evaluate_app(cfg: DictConfig) -> None:
    from restoregan.evaluation.run import evaluate

    evaluate(cfg)
    out = Path(cfg.out_dir)
    print((out / "metrics.md").read_text())
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'}, {out / 'comparison.png'}")


@hydra.main(config_path=CONFIG_PATH, config_name="infer", version_base="1.3")
@cli.task
def infer_app(cfg: DictConfig) -> None:
    from restoregan.inference.run import infer, wrote_line

    print(wrote_line(infer(cfg), Path(cfg.output)))


@hydra.main(config_path=CONFIG_PATH, config_name="export", version_base="1.3")
@cli.task
def export_app(cfg: DictConfig) -> None:
    from restoregan.exporting import export, summary

    print(summary(*export(cfg)))


def train_main() -> None:
    cli.run(train_app)


def evaluate_main() -> None:
    cli.run(evaluate_app)


def infer_main() -> None:
    import torch

    torch.set_grad_enabled(False)
    cli.run(infer_app)


def export_main() -> None:
    cli.run(export_app)
