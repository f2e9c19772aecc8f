"""A training run killed at any point and resumed with ckpt_path=last ends exactly as an uninterrupted one: the same
G, D and EMA weights, optimizer state and step (bit for bit on CPU), and the same metrics.csv, every row once.
Checkpoints are whole or absent; a resumed run removes a killed run's half-written ones."""

from __future__ import annotations

import csv
import errno
import multiprocessing
import os
import pickle
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

import restoregan.training.run as run_mod
from restoregan.training import checkpoint_io
from restoregan.training.run import train
from train_utils import Crash, compose_train, tiny_overrides

# 3 pretrain + 1 D-pretrain + 4 GAN iterations, a checkpoint every 2. 7 training photos (repeat=1) in batches of
# 2: data epochs end mid-batch. WGAN-GP draws from torch's global RNG in every D step.
SCHEDULE = [
    "pretrain_iters=3", "d_pretrain_iters=1", "gan_iters=4", "val_every=2", "data.train.repeat=1",
    "loss.adversarial.fn._target_=restoregan.losses.adversarial.WGANGPLoss",
]


class DrawRandom(pl.Callback):
    """Logs a draw from each global RNG after every batch: the CSV then shows whether they continue on resume."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        module.log_dict({"rng/torch": torch.rand(()).item(), "rng/numpy": np.random.rand(), "rng/python": random.random()})


def _run(run_dir: Path, monkeypatch, *callbacks: pl.Callback, resume: bool = False):
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [DrawRandom(), *callbacks])
    return train(compose_train(tiny_overrides(run_dir) + SCHEDULE + (["ckpt_path=last"] if resume else [])))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Bit-identical results need the same reductions: one intra-op thread in every run here (the child process
    of the SIGKILL test sets its own)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        _run(run_dir, mp)
    return run_dir


def _load(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _assert_equal_tree(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _metrics(run_dir: Path) -> list[str]:
    return (run_dir / "csv" / "metrics.csv").read_text().splitlines()


def _assert_same_as_reference(run_dir: Path, reference: Path) -> None:
    ref, got = _load(reference), _load(run_dir)
    assert ref["state_dict"]["iteration"].item() == 8 and ref["global_step"] == 12
    assert got["global_step"] == ref["global_step"]
    nets = {k.split(".")[0] for k in ref["state_dict"]}
    assert {"net_g", "net_d", "net_g_ema"} <= nets
    _assert_equal_tree(got["state_dict"], ref["state_dict"], "state_dict")  # G, D, EMA, BN buffers, iteration
    _assert_equal_tree(got["optimizer_states"], ref["optimizer_states"], "optimizer_states")
    ref_rows, got_rows = _metrics(reference), _metrics(run_dir)
    rows = list(csv.DictReader(ref_rows))
    assert [int(r["step"]) for r in rows if r["rng/torch"]] == list(range(8))  # one row per batch
    assert [int(r["step"]) for r in rows if r["val/psnr"]] == [1, 3, 5, 7]  # one per validation
    assert got_rows == ref_rows


def test_killed_at_several_points_and_resumed_equals_uninterrupted(tmp_path: Path, monkeypatch, reference) -> None:
    # killed one batch after the checkpoint at 2 (pretraining), right after the one at 4 (phase 2 just done),
    # and one batch after the one at 6 (GAN phase); each time resumed from last.ckpt
    for kill_at, last_checkpoint in ((3, 2), (4, 4), (7, 6)):
        with pytest.raises(RuntimeError, match="killed"):
            _run(tmp_path, monkeypatch, Crash(kill_at), resume=kill_at != 3)
        assert _load(tmp_path)["state_dict"]["iteration"].item() == last_checkpoint
    result = _run(tmp_path, monkeypatch, resume=True)
    assert int(result.module.iteration) == 8
    _assert_same_as_reference(tmp_path, reference)


def _killed_mid_checkpoint(run_dir: Path) -> None:
    """In a child process: train until halfway through writing the checkpoint after iteration 8, then SIGKILL:
    no exception handler, no Lightning teardown, no logger flush runs. One intra-op thread, as every run here
    (`one_thread`: a fresh interpreter does not inherit the setting)."""
    torch.set_num_threads(1)
    original = checkpoint_io._write

    def half_then_killed(path: str, data: memoryview) -> None:
        if "iter0000008" in path:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)

    checkpoint_io._write = half_then_killed
    run_mod.extra_callbacks = lambda: [DrawRandom()]
    train(compose_train(tiny_overrides(run_dir) + SCHEDULE))


def _run_in_child(fn, *args, timeout: float = 300) -> int:
    """fn(*args) in a fresh interpreter (multiprocessing's spawn); its exit code (-N: killed by signal N).
    Not a fork: a fork copies the locks other threads of this process hold (onnxruntime's, OpenMP's pools)
    and the child can wait on one of them forever."""
    child = multiprocessing.get_context("spawn").Process(target=fn, args=args)
    child.start()
    child.join(timeout)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise TimeoutError(f"training in a child process did not end within {timeout} s")
    return child.exitcode


def test_sigkill_while_writing_a_checkpoint_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, reference):
    status = _run_in_child(_killed_mid_checkpoint, tmp_path)
    assert status == -signal.SIGKILL, status
    checkpoints = tmp_path / "checkpoints"
    temps = [p.name for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".iter0000008.ckpt."), temps  # the half-written one, aside
    assert not (checkpoints / "iter0000008.ckpt").exists()
    assert _load(tmp_path)["state_dict"]["iteration"].item() == 6  # the previous checkpoint, whole

    _run(tmp_path, monkeypatch, resume=True)
    assert not [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
    _assert_same_as_reference(tmp_path, reference)


def test_disk_full_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    writes: list[str] = []
    original = checkpoint_io._write

    def full_disk_on_the_second_checkpoint(path: str, data: memoryview) -> None:
        writes.append(path)
        if len(writes) < 3:  # iter0000002.ckpt and last.ckpt
            return original(path, data)
        with open(path, "wb") as f:
            f.write(data[:4096])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no file name

    monkeypatch.setattr(checkpoint_io, "_write", full_disk_on_the_second_checkpoint)
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [])
    with pytest.raises(OSError) as info:
        train(compose_train(tiny_overrides(tmp_path) + ["pretrain_iters=4", "gan_iters=0"]))
    checkpoints = tmp_path / "checkpoints"
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(checkpoints / "iter0000004.ckpt")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["iter0000002.ckpt", "last.ckpt"]  # no partial, no temp
    assert _load(tmp_path)["state_dict"]["iteration"].item() == 2


def test_resume_refuses_a_pickled_payload_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    hostile = tmp_path / "run" / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "x": Payload()}, hostile)
    with pytest.raises(ValueError) as info:
        train(compose_train(tiny_overrides(tmp_path / "run") + ["ckpt_path=last"]))
    assert str(info.value).startswith(f"{hostile}: holds Python objects") and "\n" not in str(info.value)
    assert "not loaded for safety" in str(info.value)
    assert not marker.exists()
    with open(hostile, "wb") as f:  # the same refusal for a plain pickle
        pickle.dump(Payload(), f)
    with pytest.raises(ValueError, match="not loaded for safety"):
        train(compose_train(tiny_overrides(tmp_path / "run") + ["ckpt_path=last"]))
    assert not marker.exists()


def _loader_batches(dm, n: int, state: dict | None = None) -> list[torch.Tensor]:
    """The first n batches, over as many loader epochs as it takes (without a Trainer, one pass of the data)."""
    loader = dm.train_dataloader()
    if state is not None:
        loader.load_state_dict(state)
    batches = (batch["gt"] for _ in range(n) for batch in loader)
    return [next(batches) for _ in range(n)]


def test_training_stream_ignores_workers_and_continues_from_a_loader_state(tmp_path: Path) -> None:
    from restoregan.data.datamodule import TrainingDataModule
    from restoregan.data.datasets import HRImageDataset
    from restoregan.data.pipelines import BicubicDegradation

    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    train_set = HRImageDataset(tmp_path, BicubicDegradation(4), scale=4, crop_size=32)

    def datamodule(workers: int) -> TrainingDataModule:
        return TrainingDataModule(train_set, train_set, batch_size=2, num_workers=workers, persistent_workers=False, seed=3)

    alone = _loader_batches(datamodule(0), 5)  # batches of 2 from 7 photos: epochs end mid-batch
    assert all(b.shape == (2, 3, 32, 32) for b in alone) and not torch.equal(alone[0], alone[1])
    with_workers = _loader_batches(datamodule(2), 5)
    assert all(torch.equal(a, b) for a, b in zip(alone, with_workers))  # workers do not change the items
    state = {"batches": 2, "batch_size": 2, "seed": 3, "size": 7, "world_size": 1}
    resumed = _loader_batches(datamodule(0), 3, state)
    assert all(torch.equal(a, b) for a, b in zip(alone[2:], resumed))
    other_seed = _loader_batches(datamodule(0), 1, {**state, "batches": 0, "seed": 4})
    assert not torch.equal(other_seed[0], alone[0])


class _FakeWandbRun:
    """What WandbLogger needs of a wandb run, recording nothing (a real offline run costs seconds to start)."""

    def __init__(self, **init: object) -> None:
        self.init, self.id = init, init.get("id") or "firstrun"
        self.config = self

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def test_resumed_wandb_run_continues_the_same_wandb_run(tmp_path: Path, monkeypatch) -> None:
    import wandb

    inits: list[dict] = []
    monkeypatch.setattr(wandb, "init", lambda **kw: inits.append(kw) or _FakeWandbRun(**kw))
    overrides = tiny_overrides(tmp_path) + ["logger=wandb", "pretrain_iters=4", "gan_iters=0"]
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [Crash(3)])
    with pytest.raises(RuntimeError, match="killed"):
        train(compose_train(overrides))
    assert inits[0]["id"] is None  # a fresh run: wandb picks the id
    assert _load(tmp_path)["resume"]["loggers"] == {"ResumableWandbLogger": {"id": "firstrun"}}
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [])
    train(compose_train(overrides + ["ckpt_path=last"]))
    assert len(inits) == 2 and inits[1]["id"] == "firstrun" and inits[1]["resume"] == "allow"


@pytest.mark.parametrize(
    "crafted",
    [
        {"resume": {"rng": {"torch": torch.zeros(3, dtype=torch.uint8)}}},  # not a random state
        {"resume": ["not", "a", "dict"]},
        {"loops": {"fit_loop": {"combined_loader": [{"batches": "many"}]}}},  # not a data position
    ],
)
def test_resume_refuses_a_crafted_resume_state_in_one_line(tmp_path: Path, crafted: dict) -> None:
    hostile = tmp_path / "run" / "checkpoints" / "last.ckpt"
    hostile.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "loops": {}, **crafted}, hostile)
    with pytest.raises(ValueError) as info:
        train(compose_train(tiny_overrides(tmp_path / "run") + ["ckpt_path=last"]))
    message = str(info.value)
    assert message.startswith(f"{hostile}: its resume state is not one train.py writes") and "\n" not in message


# The same guarantee with the loader's default worker setup (2 workers, persistent) and a G learning-rate schedule:
# 2 pretrain + 3 GAN iterations, a checkpoint every 2; killed after iteration 3, resumed from the one at 2.
WORKERS_SCHEDULE = [
    "pretrain_iters=2", "gan_iters=3", "val_every=2", "data.train.repeat=1", "data.num_workers=2",
    "loss.adversarial.fn._target_=restoregan.losses.adversarial.WGANGPLoss",
    "model.scheduler_g={_target_:torch.optim.lr_scheduler.MultiStepLR,_partial_:true,milestones:[1,3],gamma:0.5}",
]


def _run_with_workers(run_dir: Path, monkeypatch, *callbacks: pl.Callback, resume: bool = False):
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [DrawRandom(), *callbacks])
    overrides = tiny_overrides(run_dir) + WORKERS_SCHEDULE + (["ckpt_path=last"] if resume else [])
    return train(compose_train(overrides))


def test_resume_with_persistent_workers_and_a_scheduler_equals_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    reference = _run_with_workers(tmp_path / "uninterrupted", monkeypatch)
    assert reference.module.trainer.datamodule.persistent_workers  # the default worker setup, really in use
    with pytest.raises(RuntimeError, match="killed"):
        _run_with_workers(tmp_path / "killed", monkeypatch, Crash(3))
    assert _load(tmp_path / "killed")["state_dict"]["iteration"].item() == 2
    _run_with_workers(tmp_path / "killed", monkeypatch, resume=True)

    ref, got = _load(tmp_path / "uninterrupted"), _load(tmp_path / "killed")
    assert ref["state_dict"]["iteration"].item() == 5
    schedule = ref["lr_schedulers"][0]
    assert schedule["last_epoch"] == 5 and schedule["_last_lr"] == [pytest.approx(1e-3 * 0.25)]  # both milestones
    for key in ("global_step", "state_dict", "optimizer_states", "lr_schedulers"):
        _assert_equal_tree(got[key], ref[key], key)
    ref_rows, got_rows = _metrics(tmp_path / "uninterrupted"), _metrics(tmp_path / "killed")
    assert [int(r["step"]) for r in csv.DictReader(ref_rows) if r["rng/torch"]] == list(range(5))
    assert got_rows == ref_rows


def test_ddp_resume_gives_each_rank_its_own_cuda_state(monkeypatch) -> None:
    """Each rank's CUDA generator advances in its own process: a resumed rank takes its own row of the gathered
    states (not rank 0's), and none when the number of processes changed. CUDA itself is faked (no GPU here)."""
    from types import SimpleNamespace

    from restoregan.training import resume

    restored: list[tuple[torch.Tensor, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    rows = torch.arange(32, dtype=torch.uint8).reshape(2, 16)  # rank 0's and rank 1's states

    def trainer(rank: int, world: int) -> SimpleNamespace:
        strategy = SimpleNamespace(root_device=torch.device("cuda", rank))
        return SimpleNamespace(strategy=strategy, global_rank=rank, world_size=world)

    resume._restore_own_cuda_state(rows, trainer(1, 2))
    assert len(restored) == 1 and torch.equal(restored[0][0], rows[1]) and restored[0][1] == torch.device("cuda", 1)
    resume._restore_own_cuda_state(rows, trainer(0, 3))  # resumed on 3 processes: left as seeded
    assert len(restored) == 1
    with pytest.raises(ValueError, match="per-rank cuda states"):
        resume._check_rng_states({**resume.rng_states(), "cuda_ranks": [1, 2]})
