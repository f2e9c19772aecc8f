"""One run, one writer: a lock file in the run folder, held from before anything is written there until exit.

`runs/<name>/.lock` holds JSON {pid, host, started, token, proc_start}. It is created with O_CREAT|O_EXCL, so of two
`train.py` started on one run exactly one gets it; the other stops at once with one line naming the holder. A
lock whose process is gone (same host, pid not alive, or alive but started after the lock: a reused pid) is stale
and taken over with a warning. A lock from another host cannot be checked from here: it is refused, and the
message says which file to delete if that run is gone.

Under DDP only the launching process (global rank 0) takes the lock: Lightning's launcher re-executes train.py
for the other ranks with LOCAL_RANK set, torchrun and SLURM set RANK / SLURM_PROCID; those run under rank 0's lock.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from omegaconf import DictConfig, OmegaConf

from restoregan.atomic import atomic_write_bytes

LOCK_NAME = ".lock"
log = logging.getLogger(__name__)

_held: set[Path] = set()  # lock files this process holds (a second acquire in-process is a second writer too)


class RunLockedError(RuntimeError):
    """Another process is training into this run folder."""


def launching_rank() -> bool:
    """Whether this process is the one that holds the run's lock: global rank 0 of a distributed run, or the
    only process. Read from the environment because the lock is taken before the Trainer exists."""
    env = os.environ
    if "RANK" in env:  # torchrun and Lightning's own ranks once the group is up
        return _int(env["RANK"]) == 0
    if "LOCAL_RANK" in env:  # Lightning's subprocess launcher: children get LOCAL_RANK>0; NODE_RANK per node
        return _int(env["LOCAL_RANK"]) == 0 and _int(env.get("NODE_RANK", "0")) == 0
    if "SLURM_PROCID" in env:
        return _int(env["SLURM_PROCID"]) == 0
    return True


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


class RunLock:
    """Context manager holding `<run_dir>/.lock` (released on exit, exception or Ctrl-C alike)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._key = self.path.absolute()
        self._token: str | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._key in _held:
            raise RunLockedError(f"{self.path}: this process already trains into {self.path.parent}")
        token = secrets.token_hex(8)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "token": token,
                  "proc_start": _proc_start(os.getpid())}
        for _ in range(5):  # each pass either creates the lock, refuses, or removes a stale one and retries
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self._read_holder()
                if holder is None:
                    continue  # vanished between open and read: try again
                reason = _stale_reason(holder)
                if reason is None:
                    raise RunLockedError(_locked_message(self.path, holder)) from None
                self._take_over(holder, reason)
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(record) + "\n")
            except BaseException as err:
                self.path.unlink(missing_ok=True)  # an empty lock (disk full) would refuse every later run
                if isinstance(err, OSError) and err.filename is None:
                    raise OSError(err.errno, err.strerror, str(self.path)) from None  # name the path
                raise
            self._token = token
            _held.add(self._key)
            return
        raise RunLockedError(f"{self.path}: could not take the run's lock (other processes keep taking it); retry")

    def release(self) -> None:
        if self._token is None:
            return
        _held.discard(self._key)
        token, self._token = self._token, None
        holder = self._read_holder(wait=0.0)
        if holder is not None and holder.get("token") == token:  # never remove a lock that is not ours
            self.path.unlink(missing_ok=True)

    def _read_holder(self, wait: float = 1.0) -> dict | None:
        """The lock's record; None if the file is gone. A lock being written (empty or partial JSON for a moment)
        is re-read for up to `wait` seconds; one still unreadable after that is reported as it is."""
        deadline = time.monotonic() + wait
        while True:
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                return None
            try:
                record = json.loads(text)
                if isinstance(record, dict):
                    return record
            except ValueError:
                pass
            if time.monotonic() >= deadline:
                return {"unreadable": text[:80]}
            time.sleep(0.05)

    def _take_over(self, holder: dict, reason: str) -> None:
        """Move a stale lock aside, then check it was still the stale one (a process taking it over at the same
        moment may have replaced it): if not, put it back."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it first
        try:
            moved = json.loads(aside.read_text())
        except ValueError:
            moved = {"unreadable": True}
        if moved != holder:
            try:
                os.link(aside, self.path)  # put the other taker's fresh lock back (fails if one exists again)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        log.warning(f"{self.path}: taking over a stale lock ({_describe(holder)}: {reason})")


def _stale_reason(holder: dict) -> str | None:
    """Why the holder is certainly gone, or None if it may still be running."""
    if "unreadable" in holder:
        return None
    if holder.get("host") != socket.gethostname():
        return None  # another machine's process cannot be checked from here
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    if pid == os.getpid():
        return "its pid is this process, which holds no lock there (a restarted container reuses pids)"
    if not _alive(pid):
        return "that process is no longer running"
    recorded, now = holder.get("proc_start"), _proc_start(pid)
    if recorded is not None and now is not None and recorded != now:
        return "its pid now belongs to another process"
    return None


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there; assume the holder is alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a killed process its parent has not reaped yet still answers signal 0
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from the holder."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _describe(holder: dict) -> str:
    if "unreadable" in holder:
        return f"unreadable contents {holder['unreadable']!r}"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def _locked_message(path: Path, holder: dict) -> str:
    if "unreadable" in holder:
        return (f"{path}: the run {path.parent} is locked ({_describe(holder)}); if no train.py is using it, "
                "delete this file")
    here = holder.get("host") == socket.gethostname()
    todo = (f"wait for it to finish, stop it (kill {holder.get('pid')}), or use another name=" if here else
            f"wait for it to finish or use another name=; if it is no longer running, delete {path}")
    return f"{path}: the run {path.parent} is being trained by {_describe(holder)}; {todo}"


def save_run_config(run_dir: str | Path, cfg: DictConfig) -> None:
    """What Hydra would write into `<run_dir>/.hydra/` itself (config.yaml, and under @hydra.main hydra.yaml and
    overrides.yaml), written by the lock's holder instead: train.yaml sets `hydra.output_subdir: null` so that a
    second train.py refused by the lock cannot overwrite the running one's config."""
    from hydra.core.hydra_config import HydraConfig

    out = Path(run_dir) / ".hydra"
    atomic_write_bytes(out / "config.yaml", OmegaConf.to_yaml(cfg).encode())
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        atomic_write_bytes(out / "hydra.yaml", OmegaConf.to_yaml({"hydra": hydra_cfg}).encode())
        atomic_write_bytes(out / "overrides.yaml", OmegaConf.to_yaml(list(hydra_cfg.overrides.task)).encode())


def hold_run(run_dir: str | Path) -> AbstractContextManager:
    """The run's lock for the launching process; nothing for the other ranks of a distributed run, which write
    only through rank 0 and must not be refused by its lock."""
    return RunLock(run_dir) if launching_rank() else nullcontext()
