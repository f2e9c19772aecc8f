"""A training run never writes over what it reads.

Before anything is written (train() calls `check_run_outputs` before it takes the run's lock), the run's outputs
(`run_outputs`: the export pair, checkpoints/, images/, the log folders, .hydra/, the lock) are checked against its
inputs with restoregan.outputs.Inputs (same path, symlink, hard link, inside an input folder, a folder holding an
input):

- `init_from`, and for an export the other half of its .safetensors + .yaml pair;
- `ckpt_path`, unless it is this run's own resume file (run_dir/checkpoints/last.ckpt, `ckpt_path=last`), which
  resuming is meant to continue; any other checkpoint inside checkpoints/ would be rotated away or replaced;
- the local files and folders the data config names (`source`, `sources`, `lr_dir`, `hr_dir`,
  `optional_sources`, `shards:` specs), at any depth of `data:`: a run_dir equal to or inside one would mix
  checkpoints and grids into the training images.

The refusal is one line starting with the config key and its value.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from restoregan.outputs import Inputs, model_files

# data config keys whose values are image/video files or folders (a string or a list of them)
DATA_PATH_KEYS = ("source", "sources", "lr_dir", "hr_dir", "optional_sources")
# sources that are not local paths: the scikit-image photos, Hugging Face datasets
_NOT_LOCAL = ("skimage", "hf:", "hf-stream:")


def run_outputs(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """(files, folders) a run writes in run_dir; the folders' files are created, replaced and rotated."""
    files = [run_dir / "export" / "generator.safetensors", run_dir / "export" / "generator.yaml", run_dir / ".lock"]
    folders = [run_dir / name for name in ("checkpoints", "images", "csv", "wandb", ".hydra")]
    return files, folders


def own_resume_file(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def training_inputs(cfg: DictConfig) -> Iterator[tuple[str, str, list[Path]]]:
    """(config key, value as given, paths it stands for) of every file or folder the run reads."""
    run_dir = Path(cfg.run_dir)
    if cfg.get("init_from"):
        yield "init_from", cfg.init_from, model_files(cfg.init_from)
    ckpt = cfg.get("ckpt_path")
    if ckpt and ckpt != "last" and Path(ckpt).resolve() != own_resume_file(run_dir).resolve():
        yield "ckpt_path", ckpt, [Path(ckpt)]
    if cfg.get("data") is not None:
        data = OmegaConf.to_container(cfg.data, resolve=True)  # `???` (not set yet) stays a string, skipped below
        yield from _data_paths(data, "data")


def _data_paths(node: Any, where: str) -> Iterator[tuple[str, str, list[Path]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in DATA_PATH_KEYS:
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    paths = _local_paths(item)
                    if paths:
                        yield f"{where}.{key}", str(item), paths
            elif isinstance(value, (dict, list)):
                yield from _data_paths(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _data_paths(value, f"{where}[{i}]")


def _local_paths(item: Any) -> list[Path]:
    if not isinstance(item, (str, Path)) or not str(item) or str(item) == "???" or str(item).startswith(_NOT_LOCAL):
        return []
    text = str(item)
    if not text.startswith("shards:"):
        return [Path(text)]
    from restoregan.data.shards import expand_braces

    paths: list[Path] = []
    for part in filter(None, text.removeprefix("shards:").split("::")):
        for entry in expand_braces(part):
            paths += [Path(p) for p in glob.glob(entry)] if glob.has_magic(entry) else [Path(entry)]
    return paths


def check_run_outputs(cfg: DictConfig) -> None:
    """Refuse, in one line naming the config key, a run whose outputs would replace or mix with an input."""
    run_dir = Path(cfg.run_dir)
    files, folders = run_outputs(run_dir)
    targets = [*((f, False) for f in files), *((f, True) for f in folders)]  # the lock file: run_dir in a folder
    for key, value, paths in training_inputs(cfg):
        inputs = Inputs(paths)
        for target, folder in targets:
            try:
                inputs.check(target, folder=folder)
            except ValueError:
                Inputs().check(target, folder=folder)  # a problem of the output alone (a folder where a file goes)
                raise ValueError(_refusal(key, value, f"into {target}/" if folder else str(target))) from None


def _refusal(key: str, value: str, target: str) -> str:
    if key.startswith("data"):
        return (f"{key}={value}: this run would write {target}, replacing or mixing with this training data; "
                "choose another run_dir (neither inside the data nor holding it)")
    todo = ("resume with ckpt_path=last, or copy the checkpoint out of the run folder first" if key == "ckpt_path"
            else "copy it out of the run folder first, or train under another name= (or run_dir=)")
    return f"{key}={value}: this run would write {target}, replacing or removing this input; {todo}"
