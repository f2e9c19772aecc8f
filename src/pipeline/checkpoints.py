"""Which checkpoint each stage runs: `stages.<stage>.ckpt=PATH`, or by default the newest export under
`runs/*/export/*.yaml` (newest by modification time) whose task is the stage's `task` (a task's `name`, e.g.
`sr`).

Finding an export only reads its yaml as plain data (`yaml.safe_load`) and looks up the class its `task._target_`
names through the same allow-list model files are loaded under (`restoregan.models.task_class`: checked as a
string before anything is imported), to read the class's `name`; nothing is built. The export picked, named on
the command line or not, is then loaded by `load_model` like any other, through the same checks (weights-only
files, descriptions that may only build this project's generators and tasks), so a crafted export dropped into
runs/ is skipped by the scan or refused in one line naming it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from restoregan.gans.checkpoint import CheckpointError, load_description
from restoregan.models import task_class
from restoregan.pretrained import sha256_file as file_digest  # one file hash for the project
from restoregan.tasks import legacy_task


class MissingCheckpointError(ValueError):
    """No checkpoint for a stage; the message names the stage and the override that fixes it."""


def export_task(path: Path) -> str | None:
    """The task name (`Task.name`) of an export description, None when the yaml is not an export of a task this
    version knows (or unreadable)."""
    try:
        description = load_description(path)  # size-capped: a huge yaml planted in runs/ must not stall the scan
    except (OSError, CheckpointError):
        return None
    if not isinstance(description, dict) or "generator" not in description:
        return None
    config = description.get("task")
    if isinstance(config, str):  # format 1: a built-in task's word
        config = legacy_task(config, description)
    if not isinstance(config, Mapping):
        return None
    try:
        cls = task_class(path, config.get("_target_"))
    except CheckpointError:
        return None
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) else None


def newest_export(runs_dir: Path, task: str) -> Path | None:
    """The most recently written `runs_dir/*/export/*.yaml` of task `task` whose weights lie beside it."""
    found = [p for p in runs_dir.glob("*/export/*.yaml")
             if p.with_suffix(".safetensors").is_file() and export_task(p) == task]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, str(p)), default=None)


def resolve_checkpoint(stage: str, configured: str | None, task: str | None, runs_dir: Path) -> Path:
    """The configured path (checked to exist), else the newest export of the stage's task."""
    if configured is not None:
        path = Path(configured)
        if not path.is_file():
            raise MissingCheckpointError(f"{path}: checkpoint of stage {stage!r} not found (stages.{stage}.ckpt)")
        return path
    if task is None:
        raise MissingCheckpointError(f"stages.{stage}.ckpt: stage {stage!r} names no checkpoint and no task to "
                                     f"look for under {runs_dir}; pass stages.{stage}.ckpt=PATH")
    path = newest_export(runs_dir, str(task))
    if path is None:
        raise MissingCheckpointError(
            f"{runs_dir}: no export of task {task!r} for stage {stage!r} under "
            f"{runs_dir}/*/export/; train one, pass stages.{stage}.ckpt=PATH, or drop the stage from pipeline.order"
        )
    return path


def checkpoint_digest(path: Path) -> str:
    """sha256 of the weights (and of an export's yaml beside them): a changed model invalidates old segments."""
    files = [path]
    if path.suffix in (".yaml", ".safetensors"):
        files = [f for f in (path.with_suffix(".yaml"), path.with_suffix(".safetensors")) if f.is_file()]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file_digest(file).encode())
    return digest.hexdigest()
