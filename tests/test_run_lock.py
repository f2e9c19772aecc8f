"""One run, one writer, and the refusals a run gives before it starts: a second train.py on a run in use, bad
schedule keys, a checkpoint of other networks. Each is one line naming the lock, key or path; the run that was
there first is unharmed."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restoregan.gans.checkpoint import CheckpointError
from restoregan.training.lock import RunLock, RunLockedError, hold_run, launching_rank
from restoregan.training.run import build_module, check_schedule, train
from train_utils import ROOT, compose_train, tiny_overrides

# Loaded by the first train.py of the two-process test (PYTHONPATH): holds it at iteration 1, lock taken and
# training under way, until the test creates the gate file.
GATE = '''
import os, time
gate = os.environ.get("RESTOREGAN_TEST_GATE")
if gate:
    import pytorch_lightning as pl
    import restoregan.training.run as run

    class _Gate(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if int(module.iteration) == 1 and not os.path.exists(gate):
                open(gate + ".waiting", "w").close()
                deadline = time.monotonic() + 120
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.05)

    _original = run.extra_callbacks
    run.extra_callbacks = lambda: [*_original(), _Gate()]
'''


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_second_train_py_on_a_run_in_use_is_refused_and_the_first_is_unharmed(tmp_path: Path) -> None:
    run_dir, hooks, gate = tmp_path / "run", tmp_path / "hooks", tmp_path / "gate"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(GATE)
    cmd = [sys.executable, "train.py", *tiny_overrides(run_dir), "logger=csv"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(hooks), "RESTOREGAN_TEST_GATE": str(gate)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{gate}.waiting").exists():
            assert first.poll() is None, f"the first run ended early:\n{first.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "the first run never reached iteration 1"
            time.sleep(0.1)
        before = _snapshot(run_dir)
        assert ".hydra/config.yaml" in before and ".lock" in before

        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr[-3000:]
        holder = json.loads(before[".lock"])
        lock = run_dir / ".lock"
        assert lines[0].startswith(f"error: {lock}: the run {run_dir} is being trained by pid {first.pid} ")
        assert f"on {socket.gethostname()}, started {holder['started']}" in lines[0]
        assert _snapshot(run_dir) == before, "the refused run must not touch the run folder"
    finally:
        gate.touch()
        out = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out[-3000:]
    assert "Training done (4 iterations)" in out
    # the task's own evaluate hint: an x4 SR run points at Set5 x4
    assert "hr_dir=../shared/data/benchmarks/Set5/x4/HR lr_dir=../shared/data/benchmarks/Set5/x4/LR out_dir=" in out
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == before[".hydra/config.yaml"]
    assert not (run_dir / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, caplog) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00", "token": "x"}
    (tmp_path / ".lock").write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING, logger="restoregan.training.lock"), RunLock(tmp_path):
        held = json.loads((tmp_path / ".lock").read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert not (tmp_path / ".lock").exists()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "restoregan.training.lock"]
    assert warning.startswith(f"{tmp_path / '.lock'}: taking over a stale lock (pid {dead.pid} on ")
    assert "no longer running" in warning and "\n" not in warning


def test_lock_of_a_live_process_refuses_train_before_it_writes(tmp_path: Path) -> None:
    live = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2024-05-01T10:00:00+02:00", "token": "x"}
    (tmp_path / ".lock").write_text(json.dumps(live))
    before = _snapshot(tmp_path)
    with pytest.raises(RunLockedError, match=rf"pid {os.getppid()} on .*started 2024-05-01T10:00:00\+02:00; "
                                             rf"wait for it to finish, stop it \(kill {os.getppid()}\)"):
        train(compose_train(tiny_overrides(tmp_path)))
    assert _snapshot(tmp_path) == before


def test_lock_of_another_host_is_refused_with_what_to_delete(tmp_path: Path) -> None:
    other = {"pid": 1, "host": "elsewhere.example", "started": "2024-05-01T10:00:00+02:00", "token": "x"}
    (tmp_path / ".lock").write_text(json.dumps(other))
    with pytest.raises(RunLockedError, match=rf"if it is no longer running, delete {tmp_path / '.lock'}$"):
        RunLock(tmp_path).acquire()


def test_lock_is_released_on_ctrl_c_and_refused_twice_in_one_process(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), RunLock(tmp_path):
        with pytest.raises(RunLockedError, match="this process already trains into"):
            RunLock(tmp_path).acquire()
        raise KeyboardInterrupt
    assert not (tmp_path / ".lock").exists()


@pytest.mark.parametrize(
    ("env", "holds"),
    [
        ({}, True), ({"LOCAL_RANK": "1"}, False), ({"LOCAL_RANK": "0"}, True),  # Lightning's launcher and children
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # its launcher on a second node
        ({"RANK": "0", "LOCAL_RANK": "0"}, True), ({"RANK": "3", "LOCAL_RANK": "0"}, False),  # torchrun
        ({"SLURM_PROCID": "2"}, False),
    ],
)
def test_only_the_launching_rank_takes_the_lock(env: dict, holds: bool, tmp_path: Path, monkeypatch) -> None:
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launching_rank() is holds
    with RunLock(tmp_path):  # rank 0 holds it: the other ranks of the same run must still get through
        if holds:
            with pytest.raises(RunLockedError):
                hold_run(tmp_path).__enter__()
        else:
            with hold_run(tmp_path):
                pass


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pretrain_iters=abc", "pretrain_iters=abc: expected a whole number of iterations >= 0"),
        ("gan_iters=-1", "gan_iters=-1: expected a whole number of iterations >= 0"),
        ("val_every=0", "val_every=0: expected a whole number of iterations >= 1"),
        ("seed=x", "seed=x: expected a seed from 0 to 2**32-1"),
        ("overwrite=maybe", "overwrite=maybe: expected true or false"),
        ("ckpt_path=5", "ckpt_path=5: expected a path, `last` or null"),
    ],
)
def test_bad_schedule_keys_are_named_in_one_line(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        check_schedule(compose_train(tiny_overrides(tmp_path) + [override]))
    assert str(info.value) == message


def test_wrong_init_from_is_named(tmp_path: Path) -> None:
    not_a_model = tmp_path / "notes.pth"
    not_a_model.write_text("not a model")
    for path in (tmp_path / "missing.safetensors", not_a_model):
        with pytest.raises(CheckpointError, match=rf"^{path}: "):
            train(compose_train(tiny_overrides(tmp_path / "run") + [f"init_from={path}"]))


def test_resume_from_a_checkpoint_of_other_networks_is_named(tmp_path: Path) -> None:
    first = train(compose_train(tiny_overrides(tmp_path / "a") + ["pretrain_iters=1", "gan_iters=0", "val_every=1"]))
    other = tiny_overrides(tmp_path / "b") + ["generator=rrdbnet_small", f"ckpt_path={first.last_checkpoint}"]
    with pytest.raises(CheckpointError) as info:
        train(compose_train(other))
    message = str(info.value)
    assert message.startswith(f"{first.last_checkpoint}: its networks do not fit this run's (generator ")
    assert "SRResNet" in message and "RRDBNet" in message and "\n" not in message
    assert not (tmp_path / "b" / ".lock").exists()
    # refused before the logger or .hydra/ wrote anything into the new run's folder
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("*"))


def test_resume_from_a_checkpoint_of_another_task_is_named(tmp_path: Path) -> None:
    module = build_module(compose_train(tiny_overrides(tmp_path)))
    state, path = module.state_dict(), tmp_path / "other.ckpt"  # networks that fit: only the task differs

    def fits(task: object) -> None:
        module.check_checkpoint_fits({"state_dict": state, "restoregan": {"task": task, "scale": 4}}, path)

    with pytest.raises(CheckpointError) as info:
        fits({"_target_": "restoregan.tasks.interp.InterpolationTask"})
    assert str(info.value) == (f"{path}: a checkpoint of a restoregan.tasks.interp.InterpolationTask run; this run's "
                               "task is restoregan.tasks.sr.SuperResolutionTask (resume with a checkpoint of this run)")
    # format 1 named its task by a word: `sr` is this run's task, `colorize` is not
    fits("sr")
    fits({"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 4})
    with pytest.raises(CheckpointError) as info:
        fits("colorize")
    assert str(info.value).startswith(f"{path}: a checkpoint of a ") and "colorize" in str(info.value).split(" run;")[0]
