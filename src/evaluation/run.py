"""Entry point behind evaluate.py: load the models (each file says its task), check that they share one task, and
run the evaluation loop (`restoregan.evaluation.loop`); with `result=`, the temporal-consistency report of a
processed video against its input instead (no model)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from restoregan.cli import check_ranges
from restoregan.data.io import set_max_pixels
from restoregan.evaluation.loop import evaluate_models
from restoregan.evaluation.report import check_report_outputs
from restoregan.inference.tiled import check_tiling, resolve_device
from restoregan.models import Model, check_chosen, chosen_task, load_model, task_from_config, with_options
from restoregan.tasks.base import RunOptions, Task

# checked up front (restoregan.cli.check_ranges): key -> (least value; what it takes)
OPTIONS = {"grid_images": (1, "a number of rows >= 1"), "temporal.max_frames": (2, "a number of frames >= 2")}


def checkpoint_paths(ckpt: str | list | ListConfig | None) -> list[Path]:
    """`ckpt=PATH` or `ckpt='[A,B]'` -> paths; omitted -> none (baseline-only report)."""
    if ckpt is None:
        return []
    items = [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
    return [Path(str(p)) for p in items]


def method_names(paths: list[Path]) -> list[str]:
    """File stems, made unique (parent/stem, then a counter)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        candidates = [path.stem, f"{path.parent.name}/{path.stem}"]
        name = next((c for c in candidates if c not in taken), None)
        i = 2
        while name is None:
            name = f"{path.stem}-{i}" if f"{path.stem}-{i}" not in taken else None
            i += 1
        taken.add(name)
        names.append(name)
    return names


def load_models(cfg: DictConfig, device: torch.device) -> dict[str, Model]:
    """cfg.ckpt's models by report name, `task.<option>=...` laid over each file's task settings once `task=` is
    checked to be the file's own; errors are one line naming the file."""
    target, options = chosen_task(cfg.get("task"))
    paths, models = checkpoint_paths(cfg.get("ckpt")), {}
    for name, path in zip(method_names(paths), paths):
        model = load_model(path, device)
        check_chosen(model, target)
        models[name] = with_options(model, options)
    return models


def report_task(cfg: DictConfig, models: dict[str, Model]) -> Task:
    """The models' task (they must share one: equal `task.config()`, or one task `can_score` the others'); without
    models, `task=<name>`'s."""
    if not models:
        if cfg.get("task") is None:
            raise ValueError("task=<name> is needed for a report without models (python evaluate.py task=sr "
                             "hr_dir=DIR out_dir=DIR); or give ckpt=MODEL, whose file says its task")
        return task_from_config(cfg.task)
    first = next(iter(models.values()))
    config = first.task.config()
    # a task may score models of a related one on its own data (a temporal restorer's clips, frame by frame for a
    # single-frame restorer: `can_score`); the report is then that task's
    for model in models.values():
        can_score = getattr(model.task, "can_score", None)
        if can_score is not None and all(can_score(m.task.config()) for m in models.values()):
            return model.task
    for model in models.values():
        if model.task.config() != config:
            raise ValueError(f"{model.path}: a model of {_describe(model.task.config())}, but {first.path} is one of "
                             f"{_describe(config)}; models of different tasks cannot share a report")
    return first.task


def _describe(config: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "_target_")
    return f"{config['_target_']}({settings})"


def evaluate(cfg: DictConfig) -> dict:
    """Run the benchmark `cfg` (conf/evaluate.yaml) describes; returns the metrics.json content."""
    if cfg.out_dir is None:
        raise ValueError("out_dir=DIR is required (python evaluate.py ckpt=... hr_dir=... out_dir=...)")
    set_max_pixels(cfg.max_pixels)  # checked from each image's header before it is decoded
    check_tiling(cfg.tile, cfg.tile_overlap)
    check_ranges(cfg, OPTIONS)
    check_report_outputs(cfg)  # before any work: the report must not land on, or among, the inputs
    if cfg.get("result") is not None:
        return evaluate_temporal_report(cfg)
    device = resolve_device(cfg.device)
    models = load_models(cfg, device)
    task = report_task(cfg, models)
    run = RunOptions(device=device, tile=cfg.tile, tile_overlap=cfg.tile_overlap)
    return evaluate_models(task, models, cfg, run)


def evaluate_temporal_report(cfg: DictConfig) -> dict:
    """Flicker of a processed video (result=) relative to its input (input=): no model is run."""
    for key in ("ckpt", "task"):
        if cfg.get(key) is not None:
            raise ValueError(f"{key}=...: result= compares two videos (input=ORIGINAL result=PROCESSED) and runs no "
                             f"model; leave {key}= out")
    if cfg.get("input") is None:
        raise ValueError("input=... is required with result= (python evaluate.py input=ORIGINAL result=PROCESSED "
                         "out_dir=DIR)")
    from restoregan.evaluation.temporal import evaluate_temporal

    return evaluate_temporal(cfg)
