"""evaluate.py / infer.py configs composed as the scripts do, infer.py run in process, and a few real photos."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def compose_conf(name: str, overrides: list[str]) -> DictConfig:
    """conf/<name>.yaml with command-line style overrides."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides)


def infer_in_process(overrides: list[str]) -> list[Path]:
    """infer.py's `infer()` on CPU, without a subprocess (the CLI's one-line errors are tested separately)."""
    spec = importlib.util.spec_from_file_location("infer_script", ROOT / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        return module.infer(compose_conf("infer", overrides + ["device=cpu"]))


def photo_folder(folder: Path, n: int = 2) -> Path:
    """n real colour photos from scikit-image (astronaut, coffee, chelsea), shrunk 4x, as PNGs."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate([skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()][:n]):
        Image.fromarray(img[::4, ::4]).save(folder / f"photo{i}.png")
    return folder


@pytest.fixture
def logging_restored():
    """Hydra configures logging when a script's main runs (dictConfig disables every existing logger): put it back,
    or later tests in this process lose the records of loggers created at import."""
    manager = logging.root.manager
    before = {name: (lg.disabled, lg.level, list(lg.handlers), lg.propagate)
              for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root = (logging.root.level, list(logging.root.handlers))
    yield
    for name, (disabled, level, handlers, propagate) in before.items():
        logger = manager.loggerDict[name]
        logger.disabled, logger.level, logger.handlers, logger.propagate = disabled, level, handlers, propagate
    logging.root.setLevel(root[0])
    logging.root.handlers = root[1]
