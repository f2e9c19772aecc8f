"""Tasks: one module per restoration task (`sr`, `colorize`, `interp`, `restore`), each owning its batches,
baselines, metrics, evaluation data, and how its models are applied to images and frame streams. The contract
is `restoregan.tasks.base.Task`; `conf/task/<name>.yaml` chooses one.

The two questions below are asked of every built-in task class in turn (no table of names): a task answers for
itself whether it rebuilds a format-1 export that named it by a word, and whether it runs a community model of
a given purpose and scale.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any, Mapping

from restoregan.tasks.base import is_task_class


def builtin_task_classes() -> Iterator[type]:
    """The task classes defined in this package's modules (those with a `config` method), in module order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and is_task_class(value):
                yield value


def legacy_task(word: str, meta: Mapping[str, Any]) -> dict | None:
    """The config of the built-in task a format-1 file named `word` (its settings were top-level keys)."""
    for cls in builtin_task_classes():
        legacy = getattr(cls, "from_legacy", None)
        config = legacy(word, meta) if legacy is not None else None
        if config is not None:
            return config
    return None


def adopt_community_model(purpose: str, scale: int, channels: tuple[int | None, int | None]) -> dict | None:
    """The config of the first built-in task that runs a community model of this purpose (spandrel's: "SR",
    "Restoration", ...), scale and (input, output) channels."""
    for cls in builtin_task_classes():
        adopt = getattr(cls, "adopt", None)
        config = adopt(purpose, scale, channels) if adopt is not None else None
        if config is not None:
            return config
    return None
