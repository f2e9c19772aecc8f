"""Which checkpoint each stage runs: `stages.<stage>.ckpt=PATH`, or by default the newest export of the stage's
task under `runs/*/export/*.yaml` (the task is read from the yaml, newest by modification time).

Finding an export only reads its yaml as plain data (`yaml.safe_load`); the export picked, named on the command
line or not, is then loaded by `load_generator` like any other, through the same checks (weights-only files,
descriptions that may only build this project's generators), so a crafted export dropped into runs/ is refused
in one line naming it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from restoregan.gans.checkpoint import CheckpointError, load_description
from restoregan.pretrained import sha256_file as file_digest  # one file hash for the project

STAGE_TASKS = {"restore": "restore", "colorize": "colorize", "upscale": "sr", "interpolate": "interp"}


class MissingCheckpointError(ValueError):
    """No checkpoint for a stage; the message names the stage and the override that fixes it."""


def export_task(path: Path) -> str | None:
    """The `task` of an export description, None when the yaml is not one (or unreadable)."""
    try:
        description = load_description(path)  # size-capped: a huge yaml planted in runs/ must not stall the scan
    except (OSError, CheckpointError):
        return None
    if not isinstance(description, dict) or "generator" not in description:
        return None
    return str(description.get("task", "sr"))


def newest_export(runs_dir: Path, task: str) -> Path | None:
    """The most recently written `runs_dir/*/export/*.yaml` of `task` whose weights lie beside it."""
    found = [p for p in runs_dir.glob("*/export/*.yaml")
             if export_task(p) == task and p.with_suffix(".safetensors").is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, str(p)), default=None)


def resolve_checkpoint(stage: str, configured: str | None, runs_dir: Path) -> Path:
    """The configured path (checked to exist), else the newest export of the stage's task."""
    if configured is not None:
        path = Path(configured)
        if not path.is_file():
            raise MissingCheckpointError(f"{path}: checkpoint of stage {stage!r} not found (stages.{stage}.ckpt)")
        return path
    path = newest_export(runs_dir, STAGE_TASKS[stage])
    if path is None:
        raise MissingCheckpointError(
            f"{runs_dir}: no export of task {STAGE_TASKS[stage]!r} for stage {stage!r} under "
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
