"""What train.py, evaluate.py and infer.py tell a user: `--help` with their own usage and only their own config
groups (training's `experiment=`, `generator=`, ... would be refused by the others, infer's `pipeline=` by train),
Hydra's job name (the script's, though restoregan.entry runs all three), and infer.py's last line."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cli_utils import logging_restored  # noqa: F401  (a fixture, used by _logging_kept)
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _logging_kept(logging_restored) -> None:
    """Each test here runs a script's main in process: Hydra's logging setup is undone after it (cli_utils)."""
TRAINING_GROUPS = ("data", "discriminator", "experiment", "generator", "logger", "loss", "trainer")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help(name: str, monkeypatch, capsys, args: tuple[str, ...] = ("--help",)) -> str:
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    main = _script(name).main
    inner = main
    while hasattr(inner, "__wrapped__"):
        inner = inner.__wrapped__
    inner.__module__ = "__main__"  # as when run as a script: Hydra then finds conf/ beside the file
    code = None
    try:
        main()  # --cfg prints and returns
    except SystemExit as exit_:  # --help exits
        code = exit_.code
    finally:
        GlobalHydra.instance().clear()  # --help leaves Hydra initialised; later compose() calls need it clear
    assert code in (0, None)
    return capsys.readouterr().out


def _group(text: str, group: str) -> list[str] | None:
    """The options a help text lists for `group` (`group: a, b, c`), or None when it lists none."""
    match = re.search(rf"^{group}: ([\w, ]+?)\s*(\(|$)", text, re.MULTILINE)
    return None if match is None else [s.strip() for s in match.group(1).split(",")]


def _stems(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


ALL_GROUPS = TRAINING_GROUPS + ("task", "pipeline", "debug", "hparams_search")


@pytest.mark.parametrize("name, usage, groups, key", [
    ("evaluate", "python evaluate.py ckpt=", ["task"], "ckpt: null"),
    ("infer", "python infer.py ckpt=", ["task", "pipeline"], "ckpt: null"),
    ("train", "python train.py experiment=", [*TRAINING_GROUPS, "task", "debug", "hparams_search"], "ckpt_path: null"),
])
def test_help_shows_the_scripts_usage_and_only_its_groups(name: str, usage: str, groups: list[str], key: str,
                                                          monkeypatch, capsys) -> None:
    text = _help(name, monkeypatch, capsys)
    assert usage in text
    for group in groups:  # every option of the folder, none that is not there: a new one must be added to the help
        assert _group(text, group) == _stems(group), (group, text)
    for group in set(ALL_GROUPS) - set(groups):
        assert _group(text, group) is None, (group, text)
    assert key in text  # the config itself, to override


@pytest.mark.parametrize("name", ["train", "evaluate", "infer"])
def test_hydra_job_name_is_the_scripts(name: str, monkeypatch, capsys) -> None:
    # restoregan.entry holds all three mains; Hydra would call each job "entry" without hydra.job.name in the yaml
    text = _help(name, monkeypatch, capsys, ("--cfg", "hydra", "--package", "hydra.job"))
    assert re.search(rf"^name: {name}$", text, re.MULTILINE), text


def test_infer_last_line_names_one_output_or_counts_files_by_kind() -> None:
    wrote_line = _script("infer").wrote_line
    out = Path("out")
    assert wrote_line([out / "film_x4.mp4"], out) == "wrote out/film_x4.mp4"
    assert wrote_line([out / "a_x4.png", out / "b_x4.png"], out) == "wrote 2 images in out"
    assert wrote_line([out / "film_x4.mp4", out / "film_x4_contact.png"], out) == "wrote 2 files in out"
