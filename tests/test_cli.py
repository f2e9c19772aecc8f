"""Every entry point answers in one line: restoregan.cli turns any failure into `error: <line>` on stderr."""

from __future__ import annotations

import errno
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_utils import logging_restored  # noqa: F401  (a fixture, used by _logging_kept)
import torch
from torch.utils.data import DataLoader, Dataset

from restoregan import cli
from restoregan.data.io import ImageReadError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _logging_kept(logging_restored) -> None:
    """Each test here runs a script's main in process: Hydra's logging setup is undone after it (cli_utils)."""


def _script_module(script: str, monkeypatch: pytest.MonkeyPatch):
    """The script as a module whose main Hydra takes for a script's (it finds conf/ beside the file)."""
    spec = importlib.util.spec_from_file_location(f"{Path(script).stem}_script", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inspect.unwrap(module.main).__module__ = "__main__"  # Hydra then locates it by its file, as when run
    return module


def _entry_point(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, list[str]]:
    """`python <script> <args>` in this process (the script's own @hydra.main under cli.run): exit status and the
    non-empty stderr lines. One real subprocess below shows the same for the script as a user runs it."""
    module = _script_module(script, monkeypatch)
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # cli.run sets it; put it back afterwards
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.run(module.main)
    return exit_.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "script, args, expected",
    [
        # Hydra's own multi-line composition error, folded into one line
        ("evaluate.py", ["no_such_key=1"], "error: Could not override 'no_such_key'."),
        ("infer.py", ["ckpt=nowhere.safetensors", "input=.", "output=out", "device=cpu"],
         "error: nowhere.safetensors: checkpoint not found"),
    ],
)
def test_entry_points_fail_in_one_line(script: str, args: list[str], expected: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
    code, lines = _entry_point(script, args, monkeypatch, capsys)
    assert code == cli.EXIT_ERROR and len(lines) == 1, lines
    assert lines[0].startswith(expected)


def test_train_script_refuses_a_word_for_a_number_in_one_line(tmp_path: Path) -> None:
    # the real script in a subprocess: nothing of Hydra's or Lightning's own reporting gets through
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(cli.TRACEBACK_ENV, None)
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "pretrain_iters=abc"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == cli.EXIT_ERROR
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: pretrain_iters=abc: expected an integer (default 1000)"]


def test_traceback_switch_shows_the_error_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    module = _script_module("infer.py", monkeypatch)
    monkeypatch.setattr(sys, "argv", ["infer.py", "ckpt=nowhere.safetensors", "input=.", "output=out", "device=cpu"])
    with pytest.raises(ValueError, match="nowhere.safetensors: checkpoint not found"):  # Python prints its traceback
        cli.run(module.main)


class _BadImages(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        raise ImageReadError(f"/data/img_{i}.png: not an image, or a corrupt one")


def test_worker_exception_is_its_original_line() -> None:
    # torch re-raises a worker's exception with the worker's traceback as the message
    loader = DataLoader(_BadImages(), num_workers=1)
    with pytest.raises(ImageReadError) as caught:
        next(iter(loader))
    assert "\n" in str(caught.value)
    assert cli.one_line(caught.value) == "/data/img_0.png: not an image, or a corrupt one"


def test_disk_full_names_the_path() -> None:
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/x/checkpoints/last.ckpt")
    assert cli.one_line(err) == (
        f"/runs/x/checkpoints/last.ckpt: {os.strerror(errno.ENOSPC)} (free some space or write elsewhere)"
    )


def test_unexpected_errors_keep_their_type_and_say_how_to_see_more() -> None:
    line = cli.one_line(TypeError("unsupported operand\nsecond line"))
    assert line.startswith("TypeError: unsupported operand")
    assert cli.TRACEBACK_ENV in line and "\n" not in line


@pytest.mark.parametrize(
    "value, default, fits",
    [(3, 1000, True), ("abc", 1000, False), ("x", 0.5, False), ("yes", False, False), (None, 512, True),
     # other kinds may be meant (Hydra parsed them); the consumer checks its own ranges
     (2.5, 1000, True), ([1, 2], 3, True), ("auto", "cpu", True), (0, "auto", True)],
)
def test_override_kinds(value, default, fits: bool) -> None:
    assert cli._fits(value, default) is fits


def test_hydra_instantiation_errors_report_their_cause() -> None:
    from hydra.errors import InstantiationException

    cause = ValueError("/cache/vgg19-dcbb9e9d.pth: its sha256 does not match")
    try:
        raise InstantiationException(f"Error in call to target 'x.Y':\n{cause!r}\nfull_key: loss") from cause
    except InstantiationException as err:
        assert cli.one_line(err) == "/cache/vgg19-dcbb9e9d.pth: its sha256 does not match"


def _check_overrides(config: str, overrides: list[str]) -> None:
    """check_override_types as it runs under @hydra.main, in process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        cli.check_override_types(cfg)


def test_experiment_values_are_the_reference_and_lightning_keys_pass_through() -> None:
    # Lightning takes devices=auto / [0] / 2 itself: not ours to refuse
    _check_overrides("train", ["experiment=sr_quickstart", "trainer.devices=auto", "task.scale=2"])
    with pytest.raises(ValueError, match=r"^gan_iters=many: expected an integer \(default \d+\)$"):
        _check_overrides("train", ["experiment=sr_quickstart", "gan_iters=many"])
    with pytest.raises(ValueError, match=r"^model.optimizer_d.lr=fast: expected a number"):
        _check_overrides("train", ["model.optimizer_d.lr=fast"])
