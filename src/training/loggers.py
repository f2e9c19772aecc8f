"""Loggers that continue a resumed run's logs instead of starting over (conf/logger/*.yaml name them).

Each has `checkpoint_state()` (called by restoregan.training.resume.ResumeState as a checkpoint is written) and
`resume(state)` (called by train.py before a resumed fit with what that checkpoint recorded).

- CSV: Lightning's CSVLogger deletes metrics.csv when it finds one. This one flushes its rows whenever a
  checkpoint is written and records how many the file holds; on resume it keeps exactly those rows, drops the
  ones logged after the checkpoint (the resumed run logs those iterations again) and appends. A fresh run
  (overwrite=true) starts the file over, as before. Header rewrites (a metric seen for the first time) are
  written aside and renamed, so a kill never leaves a half-written log.
- wandb: the run id goes into the checkpoint; a resumed run reopens that run (resume="allow") instead of
  starting a second one. wandb keeps the points it already has for the redone steps.

`log_config` gives either one the whole composed config as the run's hyperparameters (csv/hparams.yaml, wandb's
config panel), beside the module's own that Lightning logs when fit starts.
"""

from __future__ import annotations

import csv
import os
import warnings
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from restoregan.atomic import atomic_write


class ResumableCSVLogger(CSVLogger):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_rows: int | None = 0  # rows of an existing metrics.csv to keep: 0 = a fresh run, None = all

    def resume(self, state: dict | None) -> None:
        # no recorded place (a checkpoint written without this logger): keep everything rather than lose history
        rows = state.get("rows") if isinstance(state, dict) else None
        self._keep_rows = rows if isinstance(rows, int) and rows >= 0 else None

    def checkpoint_state(self) -> dict:
        self.save()  # rank zero only; the other ranks log nothing
        writer = self._experiment
        return {"rows": writer.rows if isinstance(writer, _ContinuedWriter) else 0}

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(self.log_dir, self._keep_rows)
        return self._experiment


class _ContinuedWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping the first `keep_rows` rows of an existing metrics.csv (None: all)."""

    def __init__(self, log_dir: str, keep_rows: int | None) -> None:
        self._keep_rows = keep_rows
        self.rows = 0  # data rows in metrics.csv
        super().__init__(log_dir)  # calls _check_log_dir_exists

    def _check_log_dir_exists(self) -> None:
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        if self._keep_rows == 0:
            os.remove(path)  # a fresh run over an old one (overwrite=true)
            return
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header, rows = next(reader, []), list(reader)
        keep = len(rows) if self._keep_rows is None else self._keep_rows
        if keep > len(rows):
            warnings.warn(f"{path}: holds {len(rows)} rows, the checkpoint counted {keep}; continuing after them")
            keep = len(rows)
        if keep < len(rows):  # rows logged after the checkpoint (and any half-written last line): redone now
            atomic_write(path, lambda tmp: _write_rows(tmp, header, rows[:keep]))
        self.metrics_keys, self.rows = list(header), keep

    def save(self) -> None:
        added = len(self.metrics)
        super().save()
        self.rows += added

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as f:
            rows = list(csv.DictReader(f))

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.metrics_file_path, write)


def _write_rows(path: str, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


class ResumableWandbLogger(WandbLogger):
    def resume(self, state: dict | None) -> None:
        run_id = state.get("id") if isinstance(state, dict) else None
        if isinstance(run_id, str) and run_id:  # read by wandb.init when the experiment is first used
            self._wandb_init["id"] = self._id = run_id
            self._wandb_init["resume"] = "allow"

    def checkpoint_state(self) -> dict:
        return {"id": str(self.version)} if self.version else {}


def log_config(logger: Logger, cfg: DictConfig) -> None:
    """Every group's choice and every value, interpolations resolved: what the run was, readable beside its
    metrics without the run folder's .hydra/ (a wandb run is often looked at far from it)."""
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
