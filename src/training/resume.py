"""What a checkpoint holds beyond weights, optimizers and Lightning's loop counters, so that a run killed at any
point and resumed from it (`ckpt_path=last`) continues exactly as if it had never stopped:

- the global random states (torch, CUDA, numpy, Python `random`), saved when the checkpoint is written and put
  back when training resumes. Under DDP the CPU states are rank 0's (ranks draw alike from one seed); the CUDA
  states are each rank's own device's (`cuda_ranks`, gathered from every rank at save, picked by rank at restore),
  as CUDA draws (e.g. WGAN-GP's interpolation weights) advance each device's generator in its own process;
- the loggers' places: each logger with `checkpoint_state()` / `resume(state)` (restoregan.training.loggers)
  is flushed when a checkpoint is written and told on resume where to continue (a CSV log drops the rows
  written after the checkpoint, which are logged again);
- the training data's place is the loader's own state (restoregan.data.datamodule.ResumableLoader).

Everything is stored as tensors and plain lists/dicts/numbers, so checkpoints load with
torch.load(weights_only=True). The checkpoint key is `resume`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from restoregan.gans.checkpoint import CheckpointError, torch_load_weights_only

KEY = "resume"


def read_resume_state(path: str | Path, checkpoint: Any = None) -> dict[str, Any]:
    """The `resume` part of a train.py checkpoint ({} for one written before it existed), checked to be what
    train.py writes. Weights-only: a file that holds anything but tensors and plain data is refused, never
    unpickled. `checkpoint`: the file's content when the caller has read it already."""
    if checkpoint is None:
        checkpoint = torch_load_weights_only(path, mmap=True)  # a pickled payload: one-line refusal, never run
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or not isinstance(checkpoint.get("loops"), dict):
        raise CheckpointError(f"{path}: not a training checkpoint train.py can resume from (no training state)")
    state = checkpoint.get(KEY, {})
    try:
        _check_loader_states(checkpoint["loops"].get("fit_loop", {}).get("combined_loader", []))
        if not isinstance(state, dict) or not isinstance(state.get("loggers", {}), dict):
            raise ValueError(f"`{KEY}` is {type(state).__name__}")
        if "rng" in state:
            _check_rng_states(state["rng"])
    except Exception as err:
        raise CheckpointError(f"{path}: its resume state is not one train.py writes ({_first_line(err)})") from None
    return state


def _check_loader_states(states: Any) -> None:
    keys = ("batches", "batch_size", "seed", "size", "world_size")
    for state in states:
        if not all(isinstance(state.get(k), int) and state[k] >= 0 for k in keys):
            raise ValueError(f"data loader state {str(state)[:80]}")


def _check_rng_states(state: dict[str, Any]) -> None:
    """Applied to scratch generators: each raises on a state it would not accept."""
    torch.Generator().set_state(state["torch"])
    if not all(isinstance(t, torch.Tensor) for t in state["cuda"]):
        raise ValueError("cuda states are not tensors")
    ranks = state.get("cuda_ranks")
    if ranks is not None and not (isinstance(ranks, torch.Tensor) and ranks.dtype == torch.uint8 and ranks.dim() == 2):
        raise ValueError("per-rank cuda states are not a (ranks, n) uint8 tensor")
    _numpy_generator(state["numpy"])
    p = state["python"]
    random.Random().setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _numpy_generator(n: dict[str, Any]) -> np.random.RandomState:
    generator = np.random.RandomState()
    generator.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    return generator


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class ResumeState(pl.Callback):
    def __init__(self) -> None:
        self._rng: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # the loggers flush now: the rows this checkpoint counts are on disk before it is written
        logs = {name: logger.checkpoint_state() for name, logger in _named(trainer.loggers)}
        rng = rng_states()
        cuda_ranks = _gather_cuda_states(trainer)  # every rank saves (Trainer.save_checkpoint): a collective is safe
        if cuda_ranks is not None:
            rng["cuda_ranks"] = cuda_ranks
        checkpoint[KEY] = {"rng": rng, "loggers": logs}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._rng = checkpoint.get(KEY, {}).get("rng")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # here, not at load: setting up the run in between (e.g. starting the data loader) may draw random
        # numbers that an uninterrupted run drew before the checkpoint, not after it
        if self._rng is not None:
            set_rng_states(self._rng)
            _restore_own_cuda_state(self._rng.get("cuda_ranks"), trainer)
            self._rng = None


def _cuda_device(trainer: pl.Trainer) -> torch.device | None:
    device = trainer.strategy.root_device
    return device if device.type == "cuda" else None


def _gather_cuda_states(trainer: pl.Trainer) -> torch.Tensor | None:
    """(world_size, n) uint8: row r is rank r's own device's CUDA generator state; None off CUDA or in one process."""
    device = _cuda_device(trainer)
    if device is None or trainer.world_size < 2:
        return None
    own = torch.cuda.get_rng_state(device).to(device)  # NCCL gathers device tensors
    return trainer.strategy.all_gather(own).cpu()


def _restore_own_cuda_state(cuda_ranks: torch.Tensor | None, trainer: pl.Trainer) -> None:
    """This rank's row of `cuda_ranks` into its device's generator (after set_rng_states, which restores a single
    process's states). Another number of processes than the checkpoint's: left as seeded (the data stream is
    split differently then too, with a warning)."""
    device = _cuda_device(trainer)
    if cuda_ranks is None or device is None or len(cuda_ranks) != trainer.world_size:
        return
    torch.cuda.set_rng_state(cuda_ranks[trainer.global_rank].clone(), device)


def resume_loggers(loggers: list[Any], state: dict[str, Any]) -> None:
    """Before fit: tell each resumable logger where the checkpoint left it (None: the checkpoint has no place
    for it, e.g. it was written without that logger)."""
    places = state.get("loggers", {})
    for name, logger in _named(loggers):
        logger.resume(places.get(name))


def _named(loggers: list[Any]) -> list[tuple[str, Any]]:
    return [(type(lg).__name__, lg) for lg in loggers if hasattr(lg, "checkpoint_state") and hasattr(lg, "resume")]


def rng_states() -> dict[str, Any]:
    state_np = np.random.get_state(legacy=False)  # {"bit_generator": "MT19937", "state": {"key", "pos"}, ...}
    version, words, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": torch.from_numpy(state_np["state"]["key"].astype(np.int64)),
            "pos": int(state_np["state"]["pos"]),
            "has_gauss": int(state_np["has_gauss"]),
            "gauss": float(state_np["gauss"]),
        },
        "python": {"version": version, "state": list(words), "gauss": gauss},
    }


def set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    # under DDP (`cuda_ranks`) each rank restores its own device's state instead (ResumeState.on_train_start)
    cuda = state["cuda"] if "cuda_ranks" not in state else []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(_numpy_generator(state["numpy"]).get_state())
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
