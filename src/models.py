"""A loaded model says what it is: `load_model(path) -> Model`, the one descriptor evaluate.py, infer.py, the film
pipeline and `init_from` work with, for every kind of file `restoregan.gans.checkpoint` reads (our export, our
Lightning `.ckpt`, an ESRGAN-family `.pth`, anything spandrel detects).

The task comes from the file: ours store the task's config (`task: {_target_: restoregan.tasks.sr.
SuperResolutionTask, scale: 4}`), rebuilt here under the same rules as the generator's description: the class
must be a task class of `restoregan.tasks.<module>` (or of a module named in RESTOREGAN_TASK_MODULES, for tasks
kept outside this package), its keyword arguments plain data, and it is called directly, never through Hydra.
Files of format 1 named their task by a word (`task: sr`); the built-in task that answers to that word rebuilds
it. Community models have no task of ours: the built-in tasks are asked in turn which of them adopts a model of
that purpose and scale (`adopt`), so a 1x restoration model can fill the restore stage.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from restoregan.gans.checkpoint import CheckpointError, LoadedGenerator, load_generator, plain_value
from restoregan.gans.sizes import receptive_radius
from restoregan.tasks import adopt_community_model, legacy_task
from restoregan.tasks.base import Task

TASK_PACKAGE = "restoregan.tasks"
EXTRA_TASK_MODULES = "RESTOREGAN_TASK_MODULES"  # comma-separated modules whose Task classes files may name
_TARGET = re.compile(r"([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)")
_OUR_MODULE = re.compile(r"restoregan\.tasks\.[A-Za-z]\w*")


@dataclass
class Model:
    """A loaded generator and what it is."""

    net: nn.Module  # eval mode, on the device asked for
    task: Task  # rebuilt from the file (with any options given at load time)
    scale: int  # output side / input side
    in_channels: int | None  # what the network reads and writes (None: not declared)
    out_channels: int | None
    pad_multiple: int  # input sides must divide this; callers pad (reflect) and crop back
    min_size: int  # smallest input side the network takes (after padding)
    path: Path
    source: str  # e.g. "restoregan export: restoregan.gans.rrdbnet.RRDBNet", "spandrel ESRGAN (...)"
    arch: dict | None  # {_target_, **kwargs} of our generators, None for spandrel models
    meta: dict = field(default_factory=dict)  # run name, iterations, ...

    def __str__(self) -> str:
        return f"{self.path} ({self.task.name} x{self.scale}, {self.source})"

    def receptive_radius(self) -> int | None:
        """Input pixels of context each output pixel sees, measured on this network's weights (None: wider than
        64, or global); measured once, when asked (seconds for a large network on a CPU). The overlap tiling
        needs to equal one pass: see `tiling_note`."""
        if not hasattr(self, "_radius"):
            self._radius = receptive_radius(self.net, self.in_channels or 3, multiple=self.pad_multiple)
        return self._radius


def tiling_note(model: Model, tile: int | None, overlap: int, largest_side: int) -> str | None:
    """A line to print when tiles of this model will not equal one pass: its receptive field is wider than the
    tile overlap (tiled results then differ slightly at tile seams). None when the image fits one tile."""
    if tile is None or largest_side <= tile:
        return None
    radius = model.receptive_radius()
    if radius is not None and radius <= overlap:
        return None
    wide = "wider than 64 pixels" if radius is None else f"{radius} pixels"
    return (f"note: {model.path}: its receptive field ({wide} of context) exceeds tile_overlap={overlap}; tiles may "
            f"differ slightly from one pass at their seams (raise tile_overlap, or tile=null for one pass)")


def trusted_task_modules() -> list[str]:
    extra = [m.strip() for m in os.environ.get(EXTRA_TASK_MODULES, "").split(",") if m.strip()]
    return [TASK_PACKAGE, *extra]


def task_class(path: Path, target: Any) -> type:
    """The class `target` names, if it is a class defined in a trusted task module; checked as a string before
    anything is imported, so a file cannot make us import what it likes."""
    match = _TARGET.fullmatch(target) if isinstance(target, str) else None
    trusted = trusted_task_modules()
    module_name = match.group(1) if match else ""
    # a module of this package (one level: `restoregan.tasks.sr.torch.load` is an attribute path, refused) or
    # exactly one of the modules the user trusts
    allowed = bool(_OUR_MODULE.fullmatch(module_name)) or module_name in trusted[1:]
    if not (match and allowed) or module_name == f"{TASK_PACKAGE}.base":
        raise CheckpointError(
            f"{path}: task._target_: {str(target)[:80]} is not allowed; a model file may only name a task class "
            f"of {' or '.join(trusted)} (more modules: {EXTRA_TASK_MODULES})"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise CheckpointError(f"{path}: unknown task {target} (no module {module_name})") from None
    cls = vars(module).get(match.group(2))
    if not (isinstance(cls, type) and cls.__module__ == module_name):
        raise CheckpointError(f"{path}: unknown task {target} ({module_name} defines no class {match.group(2)})")
    return cls


def _overriding(cls: type, options: Mapping[str, Any]) -> dict:
    """The options that change something: not None and not the class's own default. `conf/task/<name>.yaml`
    lists every option at its default (train.py needs them), so `task=sr` alone must not turn an x2 model into
    x4, nor `task=restore` a colour model grey: the file's settings stand unless an option says otherwise."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    return {k: v for k, v in options.items()
            if v is not None and not (k in params and params[k].default is not inspect.Parameter.empty
                                      and _same(v, params[k].default))}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def build_task(path: Path, config: Any, options: Mapping[str, Any] | None = None, given: Path | None = None) -> Task:
    """A task from its stored config `{_target_, **kwargs}` (plain data only), with `options` (infer.py's and
    the pipeline's settings, trusted config) laid over the stored kwargs where they change something
    (`_overriding`). A stored value that is refused names `path` (the file holding the description), an option
    that is refused names `given` (the model file the user gave)."""
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise CheckpointError(f"{path}: task: {str(config)[:80]} is not a task description (no _target_)")
    cls = task_class(path, config["_target_"])
    kwargs = {}
    for key, value in config.items():
        if key == "_target_":
            continue
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise CheckpointError(f"{path}: task.{key}: not allowed; a task description holds keyword arguments only")
        kwargs[key] = plain_value(path, f"task.{key}", value)
    task = _construct(path, cls, config["_target_"], kwargs)
    overrides = _overriding(cls, options or {})
    if overrides:
        task = _construct(given or path, cls, config["_target_"], {**kwargs, **overrides})
    return task


def _construct(path: Path, cls: type, target: str, kwargs: dict) -> Task:
    try:
        task = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot build task {target}: {str(err).splitlines()[0]}") from None
    if not isinstance(task, Task):
        raise CheckpointError(f"{path}: task._target_: {target} is not a task (restoregan.tasks.base.Task)")
    return task


def describe(path: Path, loaded: LoadedGenerator, options: Mapping[str, Any] | None = None) -> Model:
    """The descriptor of a generator `restoregan.gans.checkpoint` loaded. Errors in the task's description name
    the file holding it (the yaml beside an export's weights), errors in `options` the file given."""
    given, path = path, loaded.described_in or path
    if isinstance(loaded.task, Mapping):
        config = loaded.task
    elif isinstance(loaded.task, str):  # format 1: a built-in task's word, its settings at the top level
        config = legacy_task(loaded.task, {**loaded.meta, "scale": loaded.scale})
        if config is None:
            raise CheckpointError(f"{path}: task: {loaded.task[:40]} is no task this version knows")
    elif loaded.purpose is not None:  # a community model: which task takes a model of this purpose and scale
        config = adopt_community_model(loaded.purpose, loaded.scale, loaded.channels)
        if config is None:
            raise CheckpointError(f"{path}: a {loaded.purpose} model (x{loaded.scale}), which no task here runs")
    else:
        raise CheckpointError(f"{path}: names no task; re-export it with this version's train.py")
    stored = build_task(path, config)
    if stored.scale != loaded.scale:
        raise CheckpointError(f"{path}: its task is x{stored.scale} but its network scales x{loaded.scale}")
    task = build_task(path, config, options, given) if options else stored
    if task.scale != loaded.scale:
        raise CheckpointError(f"{given}: its task is x{task.scale} with these options but its network scales "
                              f"x{loaded.scale}")
    task.check_network(path, loaded.net, loaded.arch)
    in_ch, out_ch = loaded.channels
    return Model(loaded.net, task, loaded.scale, in_ch, out_ch, loaded.pad_multiple, loaded.min_size, given,
                 loaded.source, loaded.arch, dict(loaded.meta))


def load_model(
    path: str | Path, device: str | torch.device = "cpu", options: Mapping[str, Any] | None = None
) -> Model:
    """Load any model file (see module docstring) in eval mode on `device`; errors are one line naming `path`."""
    path = Path(path)
    try:
        loaded = load_generator(path, device)
        return describe(path, loaded, options)
    except CheckpointError:
        raise
    except Exception as err:  # the loader's message, one line, starting with the path
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from err
