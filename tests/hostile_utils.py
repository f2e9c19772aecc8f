"""Crafted model files that try to write a marker file when loaded the unsafe way (unpickling, or building
whatever `_target_` a description names), for tests/test_hostile_files.py."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from safetensors.torch import load_file, save_file

from restoregan.gans.checkpoint import save_export
from restoregan.gans.srresnet import SRResNet

TINY_ARCH = {"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 1, "scale": 2}


class Payload:
    """Unpickled, this opens `marker` for writing (creating it): the observable trace of code run from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return builtins.open, (self.marker, "w")


def tiny_state(prefix: str = "") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {prefix + k: v for k, v in SRResNet(num_feat=8, num_block=1, scale=2).state_dict().items()}


SR2 = {"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 2}


def description(generator: dict, task: Any = None) -> dict:
    return {"generator": generator, "task": SR2 if task is None else task, "scale": 2, "format_version": 2}


# --- pickle payloads ------------------------------------------------------------------------------
def pickled(suffix: str) -> Callable[[Path, Path], tuple[Path, Path]]:
    """A state dict with a payload beside the weights, saved as `evil<suffix>`."""

    def make(folder: Path, marker: Path) -> tuple[Path, Path]:
        path = folder / f"evil{suffix}"
        torch.save({"params_ema": tiny_state(), "hook": Payload(marker)}, path)
        return path, path

    return make


def lightning_with_payload(folder: Path, marker: Path) -> tuple[Path, Path]:
    """What a train.py checkpoint looks like (EMA weights, restoregan description, loops), plus a payload in
    its hyperparameters, where Lightning checkpoints of other projects pickle optimizer factories."""
    path = folder / "last.ckpt"
    torch.save({
        "epoch": 0, "global_step": 2, "pytorch-lightning_version": "2.6.6",
        "state_dict": {**tiny_state("net_g."), **tiny_state("net_g_ema.")},
        "restoregan": description(TINY_ARCH),
        "hyper_parameters": {"ema_decay": 0.999, "optimizer_g": Payload(marker)},
        "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
    }, path)
    return path, path


# --- descriptions that name code --------------------------------------------------------------------
def _writers(marker: Path, folder: Path) -> dict[str, Any]:
    payload = folder / "payload.pth"
    torch.save(Payload(marker), payload)
    return {
        "write_text": {"_target_": "pathlib.Path.write_text",
                       "self": {"_target_": "pathlib.Path", "_args_": [str(marker)]}, "data": "ran"},
        "open": {"_target_": "builtins.open", "file": str(marker), "mode": "w"},
        "savetxt": {"_target_": "numpy.savetxt", "fname": str(marker), "X": [1.0]},
        "torch_load": {"_target_": "torch.load", "f": str(payload), "weights_only": False},
        # inside restoregan.gans by prefix, but an attribute path to torch.load
        "attr_path": {"_target_": "restoregan.gans.checkpoint.torch.load", "f": str(payload),
                      "weights_only": False},
        # a class (passes a "must be a class" check) whose constructor creates the file
        "file_handler": {"_target_": "logging.FileHandler", "filename": str(marker)},
    }


def generator_with(kind: str, writer: str) -> Callable[[Path, Path], dict]:
    """A generator description: `nested` puts the writer in num_feat, `list` in a list entry, `target` makes
    it the generator itself, `args` passes it through Hydra's `_args_`."""

    def make(folder: Path, marker: Path) -> dict:
        code = _writers(marker, folder)[writer]
        if kind == "nested":
            return {**TINY_ARCH, "num_feat": code}
        if kind == "list":
            return {**TINY_ARCH, "num_feat": [code]}
        if kind == "args":
            return {**TINY_ARCH, "_args_": [code]}
        return code

    return make


def task_with(kind: str, writer: str) -> Callable[[Path, Path], dict]:
    """A task description naming code: `target` makes the writer the task itself, `nested` puts it in a task
    keyword argument, `module` names a class of a module outside the trusted task modules."""

    def make(folder: Path, marker: Path) -> dict:
        code = _writers(marker, folder)[writer]
        if kind == "nested":
            return {**SR2, "scale": code}
        if kind == "attr":  # inside restoregan.tasks by prefix, an attribute path to torch.load
            return {**code, "_target_": "restoregan.tasks.sr.torch.load"}
        return code

    return make


def export_with(
    where: str, generator: Callable[[Path, Path], dict], task: Callable[[Path, Path], dict] | None = None
) -> Callable[[Path, Path], tuple[Path, Path]]:
    """A real export whose description is replaced: in the safetensors metadata (no yaml beside), in the yaml
    beside it (metadata clean), or in the `restoregan` dict of a weights-only-clean .ckpt. Returns the path
    given to the program and the file whose description is refused."""

    def make(folder: Path, marker: Path) -> tuple[Path, Path]:
        gen = generator(folder, marker) if generator is not None else TINY_ARCH
        desc = description(gen, task(folder, marker) if task is not None else None)
        if where == "ckpt":
            path = folder / "described.ckpt"
            torch.save({"state_dict": tiny_state("net_g."), "restoregan": desc}, path)
            return path, path
        torch.manual_seed(0)
        weights = save_export(folder / "evil", SRResNet(num_feat=8, num_block=1, scale=2), TINY_ARCH,
                              {"task": SR2, "scale": 2})
        if where == "metadata":
            weights.with_suffix(".yaml").unlink()
            save_file(load_file(weights), weights, metadata={"format": "pt", "restoregan": json.dumps(desc)})
            return weights, weights
        weights.with_suffix(".yaml").write_text(yaml.safe_dump(desc))
        return weights, weights.with_suffix(".yaml")

    return make


HOSTILE_MODELS: dict[str, Callable[[Path, Path], tuple[Path, Path]]] = {
    "pickle.pth": pickled(".pth"),
    "pickle.pt": pickled(".pt"),
    "pickle.ckpt": pickled(".ckpt"),
    "lightning.ckpt": lightning_with_payload,
    "metadata-nested-write_text": export_with("metadata", generator_with("nested", "write_text")),
    "metadata-nested-torch_load": export_with("metadata", generator_with("nested", "torch_load")),
    "metadata-nested-attr_path": export_with("metadata", generator_with("nested", "attr_path")),
    "metadata-target-file_handler": export_with("metadata", generator_with("target", "file_handler")),
    "metadata-target-open": export_with("metadata", generator_with("target", "open")),
    "yaml-nested-savetxt": export_with("yaml", generator_with("nested", "savetxt")),
    "yaml-list-open": export_with("yaml", generator_with("list", "open")),
    "yaml-args-open": export_with("yaml", generator_with("args", "open")),
    "yaml-target-file_handler": export_with("yaml", generator_with("target", "file_handler")),
    "yaml-target-attr_path": export_with("yaml", generator_with("target", "attr_path")),
    "ckpt-description-nested-open": export_with("ckpt", generator_with("nested", "open")),
    "ckpt-description-target-file_handler": export_with("ckpt", generator_with("target", "file_handler")),
    # the task a file names is rebuilt under the same rules (restoregan.models.build_task)
    "yaml-task-target-file_handler": export_with("yaml", None, task_with("target", "file_handler")),
    "metadata-task-target-open": export_with("metadata", None, task_with("target", "open")),
    "yaml-task-nested-savetxt": export_with("yaml", None, task_with("nested", "savetxt")),
    "ckpt-task-attr-torch_load": export_with("ckpt", None, task_with("attr", "torch_load")),
}


def plant_backbone(torch_home: Path, url: str, marker: Path) -> Path:
    """A payload saved where the offline error tells users to put `url`'s file."""
    path = torch_home / "hub" / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": Payload(marker)}, path)
    return path
