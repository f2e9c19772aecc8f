"""The evaluation loop behind evaluate.py, one for every task: the task's evaluation data (`task.eval_data`), its
baselines and each model (`task.run_batch`) on every item, scored by `task.metrics`, the function validation
logs `val/<key>` with, so a model's numbers here and in training agree. Beside the task's metrics: LPIPS, when the
task lists an "lpips" column and `lpips=true`, and metrics over the whole set a task may define (colorize's FID).

A task's set metrics: `task.set_metrics(device) -> ({key: metric or None}, note)`, called once per method for
fresh accumulators; a metric takes `update(image, real)` ((H, W, 3) 8-bit-quantised float images: the targets
are the real set, the method's outputs the other) and `compute() -> float`. None (weights unavailable, switched
off) makes the key null for every method, with `<key>_note` saying why.

The report: metrics.json = {**header, lpips_note, <key>_note, "methods": {name: {means, ["checkpoint"], "images":
rows}}}, a row per item {"image": name, **item["info"], **scores}; means over finite values (identical frames score
PSNR inf), None where any item has none; a model's "checkpoint" is its file's path and sha256 (an export's weights
and yaml: `report.checkpoint_record`), hashed before scoring; baselines have none. metrics.md (title, table of
`task.metric_columns`, notes); comparison.png: per item an overview of the target with the crop box outlined,
the target's most detailed crop, then each method's, labelled with the primary metric's header and value.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor
from tqdm import tqdm

from restoregan.data.io import quantize, to_numpy
from restoregan.evaluation.report import (checkpoint_record, comparison_row, crop_grid, markdown, report_inputs,
                                         write_report)
from restoregan.models import Model
from restoregan.pretrained import MissingWeightsError
from restoregan.tasks.base import RunOptions, Task, finite_mean


def load_lpips(cfg: DictConfig, device: torch.device) -> tuple[Callable[[Tensor, Tensor], Tensor] | None, str | None]:
    """The LPIPS metric, or None and the reason (lpips=false, or the backbone's weights unavailable offline)."""
    if not cfg.get("lpips"):
        return None, "disabled (lpips=false)"
    from restoregan.metrics.lpips import LPIPS  # imports lpips only when asked for

    try:
        return LPIPS(net=cfg.get("lpips_net", "alex")).to(device), None
    except MissingWeightsError as err:
        return None, str(err)


def _size(t: Tensor) -> str:
    return f"{t.shape[-1]}x{t.shape[-2]}"


class SetScores:
    """The task's set metrics (see module docstring), one accumulator per method."""

    def __init__(self, task: Any, methods: list[str], device: torch.device) -> None:
        self.metrics: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, str | None] = {}
        make = getattr(task, "set_metrics", None)
        if make is None:
            return
        for method in methods:
            metrics, note = make(device)
            for key, metric in metrics.items():
                self.metrics.setdefault(key, {})[method] = metric
                if metric is None:
                    self.notes[key] = note
                self.notes.setdefault(key, None)

    def update(self, method: str, output: np.ndarray, target: np.ndarray) -> None:
        for key, per_method in self.metrics.items():
            if self.notes[key] is None:
                per_method[method].update(target, real=True)
                per_method[method].update(output, real=False)

    def compute(self, method: str) -> dict[str, float | None]:
        return {key: None if self.notes[key] is not None else float(per_method[method].compute())
                for key, per_method in self.metrics.items()}


def evaluate_models(task: Task, models: dict[str, Model], cfg: DictConfig, run: RunOptions) -> dict:
    """Score the task's baselines and `models` (report name -> loaded model) on `task.eval_data(cfg)`; write
    metrics.json, metrics.md and comparison.png to cfg.out_dir at once; return metrics.json's content."""
    data = task.eval_data(cfg)
    items = iter(data.items)
    first = next(items, None)
    if first is None:
        where = next((str(s) for s in data.sources if s is not None), "evaluate.py")
        raise ValueError(f"{where}: nothing to evaluate (no images)")
    baselines = list(task.baselines(first))
    for name, model in models.items():
        if name in baselines:
            raise ValueError(f"{model.path}: its report name {name!r} is the name of a baseline of task {task.name}; "
                             "rename the file")
    methods = [*baselines, *models]
    # hashed before scoring: the numbers belong to the file as it was read (loaded just before this)
    checkpoints = {name: checkpoint_record(model.path) for name, model in models.items()}
    columns = task.metric_columns
    use_lpips = any(key == "lpips" for key, _, _ in columns)
    lpips, lpips_note = load_lpips(cfg, run.device) if use_lpips else (None, None)
    sets = SetScores(task, methods, run.device)
    rows: dict[str, list[dict]] = {name: [] for name in methods}
    keys: dict[str, list[str]] = {}  # the score keys of each method's rows
    grid_rows: list = []
    total = data.count if data.count is not None else len(data.items) if hasattr(data.items, "__len__") else None

    with torch.no_grad():
        for batch in tqdm(chain([first], items), total=total, desc=f"evaluating {task.name}", unit="item"):
            item = batch["name"]
            target = task.target(batch)
            outputs = dict(task.baselines(batch))
            for name, model in models.items():
                outputs[name] = task.run_batch(model, batch, run)
            target_q = quantize(target)
            for name, output in outputs.items():
                if output.shape[-2:] != target.shape[-2:]:
                    who = f"{models[name].path}: produced" if name in models else f"{item}: baseline {name} made"
                    raise ValueError(f"{who} {_size(output)} for {item}, whose target is {_size(target)}")
                output = output.to(target.device)
                scores = {k: float(v[0]) for k, v in task.metrics(output, batch).items()}
                out_q = quantize(output)
                if use_lpips:
                    scores["lpips"] = None if lpips is None else float(  # a clip's: the mean of its frames'
                        lpips(out_q.to(run.device), target_q.to(run.device)).mean())
                if sets.metrics:
                    sets.update(name, to_numpy(out_q), to_numpy(target_q))
                keys.setdefault(name, list(scores))
                rows[name].append({"image": item, **batch.get("info", {}), **scores})
                outputs[name] = out_q
            if len(grid_rows) < cfg.get("grid_images", 5):
                values = {name: rows[name][-1].get(columns[0][0]) for name in outputs}
                pick = getattr(task, "grid_image", lambda x: x)  # a clip's task picks the frame to show
                grid_rows.append(comparison_row(item, to_numpy(pick(target_q)),
                                                {name: to_numpy(pick(out)) for name, out in outputs.items()}, values,
                                                columns[0], task.grid_crop))

    summaries = {}
    for name in methods:
        summaries[name] = {k: finite_mean([r.get(k) for r in rows[name]]) for k in keys[name]}
        summaries[name].update(sets.compute(name))
    notes = {**({"lpips_note": lpips_note} if use_lpips else {}), **{f"{k}_note": n for k, n in sets.notes.items()}}
    for name, record in checkpoints.items():
        if record is not None:  # None: a model built in memory (tests), read from no file
            summaries[name]["checkpoint"] = record
    report = {**data.header, **notes, "methods": {name: {**summaries[name], "images": rows[name]} for name in methods}}
    n = len(rows[methods[0]])
    lines = list(data.notes(data.header))
    lines += [f"{key[:-5].upper()}: {note}" for key, note in notes.items() if note]
    text = markdown(data.title(data.header, n), report["methods"], columns, lines)
    inputs = report_inputs(cfg)
    for source in data.sources:
        inputs.add(source)
    write_report(Path(cfg.out_dir), report, text, crop_grid(grid_rows), inputs)
    return report

