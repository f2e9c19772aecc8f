"""Atomic file writes: a temp file beside the target, then os.replace, so no reader (or a resumed run) ever
sees a half-written output, and an interrupted write leaves the previous file intact.

- Temp names are `.<name>.<8 random chars>.tmp` beside the target (`.old` for a replaced folder parked while
  its successor moves in); `remove_stale_temps` removes exactly these, for the names a run is about to write,
  so the leftovers of a killed run go at the next start and nothing else is touched.
- `Staged` writes several outputs that must appear together (a report's files, a video and its contact sheet):
  all are written aside first and renamed only when every one is complete.
- Permissions: temps are created with mode 0666 (folders 0777), so the kernel applies the user's umask exactly
  as open() would. The umask itself is never read: os.umask can only be read by setting it, a process-wide
  change that races with other threads creating files. The mode the kernel gave is re-applied after the
  writer ran, because some writers replace the file they are handed (safetensors' save_file leaves 0600).
- Errors: an OSError about the temp file (or a disk-full error that names no file) is re-raised naming the
  final path, so "No space left on device" says which output failed, never a temp name.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
# `.<name>.<8 chars>.tmp|old`: ours (and tempfile.mkstemp's, which earlier versions used) and nothing else
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?:tmp|old)$")
# write errors that name no file (a plain write() on a full disk): they belong to the output being written
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _temp_path(path: Path, suffix: str = ".tmp") -> Path:
    return path.with_name(f".{path.name}.{''.join(secrets.choice(_CHARS) for _ in range(8))}{suffix}")


def _create(path: Path, folder: bool, suffix: str = ".tmp") -> tuple[Path, int]:
    """A new empty temp file (or folder) beside `path` and the permission bits the umask gave it."""
    for _ in range(100):
        tmp = _temp_path(path, suffix)
        try:
            if folder:
                os.mkdir(tmp, 0o777)
                return tmp, stat.S_IMODE(os.stat(tmp).st_mode)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    raise FileExistsError(errno.EEXIST, "no free temp name", str(path))


def _naming(err: BaseException, temps: dict[str, Path]) -> BaseException | None:
    """`err` re-made to name the final path instead of a temp file (or a file in a temp folder) of `temps`
    (temp -> target); None when it is about something else."""

    def final(name: str) -> str | None:
        for tmp, target in temps.items():
            if name == tmp or name.startswith(tmp + os.sep):
                return str(target) + name[len(tmp):]
        return None

    only = str(next(iter(temps.values()))) if len(temps) == 1 else None
    if isinstance(err, OSError) and err.errno is not None:
        named = final(str(err.filename)) if err.filename is not None else None
        if named is None and err.filename is None and err.errno in _WRITE_ERRNOS:
            named = only  # a plain write() on a full disk names no file: it is the one being written
        if named is None:
            return None
        return OSError(err.errno, err.strerror or os.strerror(err.errno), named)
    text = str(err)
    rust_io = re.search(r"\(os error (\d+)\)", text)  # Rust libraries (safetensors) report I/O errors so
    if rust_io and only is not None:
        code = int(rust_io[1])
        return OSError(code, os.strerror(code), only)
    if any(tmp in text for tmp in temps):
        for tmp, target in temps.items():
            text = text.replace(tmp, str(target))
        try:
            return type(err)(text)
        except Exception:  # an exception type that takes other arguments: keep the original
            return None
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the data is on disk before the name points at it (a crash shows old or new, not empty)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class Staged:
    """Outputs that appear together. `write(target, fn)` / `write_bytes` / `temp(target)` / `temp_dir(target)`
    put each into a temp beside its target; `commit()` renames them all into place (a folder target replaces
    the previous folder); `discard()` (or leaving the `with` block by an exception) removes the temps, so a
    failure leaves the previous outputs untouched and no new file under a final name.

    `durable=True` also flushes each file to disk before its rename, so that a power cut (not only a kill) shows
    the old or the new file, never an empty one. It costs ~4 ms a file (10x the write of a small PNG), so it is
    for the few files that are expensive to redo (checkpoints, exports, reports, a finished film), not frames."""

    def __init__(self, durable: bool = False) -> None:
        self._temps: list[tuple[Path, Path, int, bool]] = []  # (temp, target, mode, folder)
        self.durable = durable

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, kind, err, tb) -> None:
        if kind is None:
            self.commit()
            return
        named = _naming(err, self._names()) if isinstance(err, Exception) else None
        self.discard()
        if named is not None:
            raise named from err

    def temp(self, target: str | Path, folder: bool = False) -> Path:
        """A new temp file (folder) for `target`, to be filled by the caller; renamed at commit."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _create(target, folder)
        self._temps.append((tmp, target, mode, folder))
        return tmp

    def temp_dir(self, target: str | Path) -> Path:
        return self.temp(target, folder=True)

    def write(self, target: str | Path, write: Callable[[str], object]) -> Path:
        """Call write(temp path) for `target`; an error from it names `target`, not the temp."""
        tmp = self.temp(target)
        try:
            write(str(tmp))
        except Exception as err:
            named = _naming(err, {str(tmp): Path(target)})
            if named is not None:
                raise named from err
            raise
        return Path(target)

    def write_bytes(self, target: str | Path, data: bytes) -> Path:
        return self.write(target, lambda tmp: Path(tmp).write_bytes(data))

    def _names(self) -> dict[str, Path]:
        return {str(tmp): target for tmp, target, _, _ in self._temps}

    def targets(self) -> list[Path]:
        return [target for _, target, _, _ in self._temps]

    def commit(self) -> list[Path]:
        try:
            for tmp, target, mode, folder in self._temps:
                if stat.S_IMODE(os.stat(tmp).st_mode) != mode:  # a writer replaced our temp with its own file
                    os.chmod(tmp, mode)
                if self.durable and not folder:
                    _fsync(tmp)
            for tmp, target, _, folder in self._temps:
                if folder and target.is_dir() and not target.is_symlink():
                    # a folder cannot be renamed over a non-empty one: park the old one, move in, then delete
                    parked, _ = _create(target, folder=True, suffix=".old")
                    os.replace(target, parked / target.name)
                    os.replace(tmp, target)
                    shutil.rmtree(parked, ignore_errors=True)
                else:
                    os.replace(tmp, target)
        except BaseException:
            self.discard()
            raise
        done = self.targets()
        self._temps = []
        return done

    def discard(self) -> None:
        for tmp, _, _, _ in self._temps:
            _remove(tmp)
        self._temps = []


def atomic_write(path: str | Path, write: Callable[[str], object], durable: bool = False) -> Path:
    """Call write(tmp_path) for a temp file in path's folder, then rename it over `path` (`durable`: see Staged)."""
    with Staged(durable) as staged:
        staged.write(path, write)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = False) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def remove_stale_temps(targets: Iterable[str | Path]) -> list[Path]:
    """Remove the temps a killed run left beside `targets` (`.<name>.<8 chars>.tmp|old` of exactly those
    names); returns what was removed. Call it before writing them, while no other run writes the same files."""
    names: dict[Path, set[str]] = defaultdict(set)
    for target in targets:
        target = Path(target)
        names[target.parent].add(target.name)
    removed = []
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _TEMP.match(entry.name)
            if match and match["name"] in wanted:
                _remove(Path(entry.path))
                removed.append(Path(entry.path))
    return removed
