"""Checkpoints whole or absent.

Lightning's TorchCheckpointIO writes a checkpoint in place, so a kill or a full disk mid-write leaves a truncated
file under its final name (`iter0000250.ckpt`, `last.ckpt`) that resume then fails on. `AtomicCheckpointIO`
writes every checkpoint (ModelCheckpoint's and `Trainer.save_checkpoint`'s) to a temp file beside it and renames
it into place (restoregan.atomic); a failed write removes the temp and raises naming the checkpoint's path.
`remove_checkpoint_temps` removes the temps a killed run left. Local paths only.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from restoregan.atomic import atomic_write, remove_stale_temps

# `.<name>.ckpt.<8 chars>.tmp` (restoregan.atomic's temp names), and `.last.ckpt.tmp` of earlier versions
_CKPT_TEMP = re.compile(r"^\.(?P<name>.+\.ckpt)\.[a-z0-9_]{8}\.tmp$")
_OLD_LAST_TEMP = ".last.ckpt.tmp"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        # Serialised in memory first, as Lightning does: torch.save's own file writer reports a full disk as an
        # opaque RuntimeError, a plain write() as OSError(ENOSPC), which atomic_write re-raises naming `path`.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda tmp: _write(tmp, buffer.getbuffer()), durable=True)  # days of training


def _write(path: str, data: memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)


def remove_checkpoint_temps(folder: str | Path) -> list[Path]:
    """Remove the checkpoint temps a killed run left in `folder`; returns what was removed."""
    folder = Path(folder)
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    targets = [folder / m["name"] for m in map(_CKPT_TEMP.match, names) if m]
    removed = remove_stale_temps(targets)
    if _OLD_LAST_TEMP in names:
        (folder / _OLD_LAST_TEMP).unlink(missing_ok=True)
        removed.append(folder / _OLD_LAST_TEMP)
    return removed
