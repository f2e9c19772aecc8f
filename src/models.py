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
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from restoregan.gans.checkpoint import CheckpointError, LoadedGenerator, load_generator, plain_value
from restoregan.gans.sizes import receptive_radius
from restoregan.tasks import adopt_community_model, legacy_task
from restoregan.tasks.base import Task, is_task_class

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
    path: Path
    source: str  # e.g. "restoregan export: restoregan.gans.rrdbnet.RRDBNet", "spandrel ESRGAN (...)"
    arch: dict | None  # {_target_, **kwargs} of our generators, None for spandrel models
    meta: dict = field(default_factory=dict)  # run name, iterations, ...
    bf16: bool = False  # runs under bf16 autocast (infer.py's speed switches, restoregan.inference.speed)

    def __str__(self) -> str:
        return f"{self.path} ({self.task.name} x{self.scale}, {self.source})"

    @cached_property
    def receptive_radius(self) -> int | None:
        """Input pixels of context each output pixel sees, measured on this network's weights (None: wider than
        64, or global); measured once, when asked (seconds for a large network on a CPU). The overlap tiling
        needs to equal one pass: see `tiling_note`."""
        return receptive_radius(self.net, self.in_channels or 3, multiple=self.pad_multiple)


def tiling_note(model: Model, tile: int | None, overlap: int, largest_side: int) -> str | None:
    """A line to print when tiles of this model will not equal one pass: its receptive field is wider than the
    tile overlap (tiled results then differ slightly at tile seams). None when the image fits one tile."""
    if tile is None or largest_side <= tile:
        return None
    radius = model.receptive_radius
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
    if not is_task_class(cls):  # checked before the class is ever called with the file's arguments
        raise CheckpointError(f"{path}: task._target_: {target} is not allowed; it is no task class")
    return cls


def _unset(cls: type, key: str, value: Any) -> bool:
    """An option that says nothing: None, or the class's own default (`conf/task/<name>.yaml` lists every option
    at its default for train.py, so `task=sr` alone must not turn an x2 model into x4)."""
    if value is None:
        return True
    try:
        param = inspect.signature(cls).parameters.get(key)
    except (TypeError, ValueError):
        return False
    if param is None or param.default is inspect.Parameter.empty:
        return False
    try:
        return bool(value == param.default) and type(value) is type(param.default)
    except Exception:
        return False


def build_task(path: Path, config: Any, options: Mapping[str, Any] | None = None, given: Path | None = None) -> Task:
    """A task from its stored config `{_target_, **kwargs}` and `options` (infer.py's, evaluate.py's and the
    pipeline's settings, trusted config).

    The file may hold only what describes the trained model (the keys `config()` gives back, plain data): a file
    carrying application options (a damage seed, an output switch) is refused. Options that say something
    (`_unset`) apply; one that contradicts what the file says about the model (scale, colour space) is refused
    unless the task lists it in `overridable` (e.g. a colorizer's render size). Stored values that are refused
    name `path` (the file holding the description), options name `given` (the model file the user gave)."""
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise CheckpointError(f"{path}: task: {str(config)[:80]} is not a task description (no _target_)")
    target = config["_target_"]
    cls = task_class(path, target)
    kwargs = {}
    for key, value in config.items():
        if key == "_target_":
            continue
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise CheckpointError(f"{path}: task.{key}: not allowed; a task description holds keyword arguments only")
        kwargs[key] = plain_value(path, f"task.{key}", value)
    task = _construct(path, cls, target, kwargs)
    described = task.config()
    for key in kwargs:
        if key not in described:
            raise CheckpointError(f"{path}: task.{key}: not something a model file says (an option of "
                                  "evaluate.py / infer.py, set there)")
    said = {k: v for k, v in (options or {}).items() if not _unset(cls, k, v)}
    if not said:
        return task
    given = given or path
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in said:
            if key not in params:  # e.g. a temporal restorer's window given with a single-frame model
                raise CheckpointError(f"{given}: task.{key}: not an option of its task {target} (its options: "
                                      f"{', '.join(params)})")
    for key, value in said.items():
        if key in described and value != described[key] and key not in getattr(cls, "overridable", ()):
            raise CheckpointError(f"{given}: task.{key}={value}: the model file says {described[key]!r}; that is the "
                                  "model's own, not an option")
    return _construct(given, cls, target, {**kwargs, **said})


def _construct(path: Path, cls: type, target: str, kwargs: dict) -> Task:
    try:
        task = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot build task {target}: {str(err).splitlines()[0]}") from None
    if not isinstance(task, Task):
        raise CheckpointError(f"{path}: task._target_: {target} is not a task (restoregan.tasks.base.Task)")
    return task


def with_options(model: Model, options: Mapping[str, Any] | None) -> Model:
    """The same loaded model with its task rebuilt under `options` (see build_task); the weights are not read
    again. Callers check first that the model's task is the one the options were written for."""
    if not options:
        return model
    task = build_task(model.path, model.task.config(), options, model.path)
    if task.scale != model.scale:
        raise CheckpointError(f"{model.path}: its task is x{task.scale} with these options but its network scales "
                              f"x{model.scale}")
    return replace(model, task=task)


def chosen_task(task_cfg: Any) -> tuple[str | None, dict | None]:
    """(`_target_`, options) of `task=<name> task.<option>=...` in evaluate.py / infer.py; (None, None) without."""
    if task_cfg is None:
        return None, None
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(task_cfg, resolve=True) if not isinstance(task_cfg, dict) else dict(task_cfg)
    return options.pop("_target_", None), options


def check_chosen(model: Model, target: str | None, flag: str = "task=") -> None:
    """A `task=` choice must be the model's own task (its options are written for that task)."""
    own = model.task.config()["_target_"]
    if target is not None and target != own:
        raise ValueError(f"{model.path}: a model of {own}, but {flag} chose {target}; leave task= out (the model "
                         "file says its task) or choose the model's")


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
    task = build_task(path, config)
    if task.scale != loaded.scale:
        raise CheckpointError(f"{path}: its task is x{task.scale} but its network scales x{loaded.scale}")
    task.check_network(path, loaded.net, loaded.arch)
    in_ch, out_ch = loaded.channels
    model = Model(loaded.net, task, loaded.scale, in_ch, out_ch, loaded.pad_multiple, given, loaded.source,
                  loaded.arch, dict(loaded.meta))
    return with_options(model, options)


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


def task_from_config(task_cfg: Any) -> Task:
    """The task `task=<name>` (conf/task/<name>.yaml plus overrides: trusted config, built by Hydra) describes, its
    keyword arguments plain data (what an export stores); train.py's and a baseline-only evaluate.py's. Errors in
    one line naming the key."""
    try:
        from hydra.utils import instantiate

        task = instantiate(task_cfg, _convert_="all")
    except Exception as err:  # Hydra wraps the constructor's error in several lines; its cause says it
        cause = err.__cause__ or err
        msg = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if not msg.startswith("task"):  # name the config key: "scale=0: ..." -> "task.scale=0: ..."
            msg = f"task.{msg}" if re.match(r"\w+[=:]", msg) else f"task: {msg}"
        raise ValueError(msg) from err
    if not isinstance(task, Task):
        raise ValueError(f"task._target_: {task_cfg.get('_target_')} is not a task (restoregan.tasks.base.Task)")
    return task
