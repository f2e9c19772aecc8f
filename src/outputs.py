"""Outputs never touch inputs. `Inputs` collects what a run reads (model files, data files and folders);
`Inputs.check(target)` refuses, in one line naming the output, the input and what to do, an output that

- is an input: the same path once symlinks are resolved, or the same file by inode (a hard link, a symlink);
- lies in an input folder (or below it): new files would mix into the input set, and a later run would read
  them as inputs (`evaluate.py out_dir=` the HR folder, PNG frames written into the frame folder they came from);
- would replace a folder holding an input (an output folder that is swapped in whole).

Inputs are given as paths (None, an absent optional input, is skipped); one that does not exist (yet) is
compared by path only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from restoregan.atomic import remove_stale_temps


def model_files(path: str | Path) -> list[Path]:
    """A model file and, for an export, the other half of its .safetensors + .yaml pair."""
    path = Path(path)
    if path.suffix in (".safetensors", ".yaml"):
        other = path.with_suffix(".yaml" if path.suffix == ".safetensors" else ".safetensors")
        return [path, other]
    return [path]


class Inputs:
    """Files and folders a run reads (see module docstring)."""

    def __init__(self, paths: Iterable[str | Path | None] = ()) -> None:
        self.files: dict[Path, Path] = {}  # resolved -> as given
        self.folders: dict[Path, Path] = {}
        self.inodes: dict[tuple[int, int], Path] = {}
        for path in paths:
            self.add(path)

    def add(self, path: str | Path | None) -> Inputs:
        if path is None:
            return self
        path = Path(path)
        resolved = path.resolve()
        if not os.path.lexists(path):  # nothing to overwrite yet, but an output must still not be named so
            self.files.setdefault(resolved, path)
        elif path.is_dir():
            self.folders[resolved] = path
            for entry in os.scandir(path):  # the files in it, by inode: a hard link elsewhere is still them
                if entry.is_file():
                    self._inode(Path(entry.path))
        else:
            self.files[resolved] = path
            self._inode(path)
        return self

    def add_models(self, paths: Iterable[str | Path | None]) -> Inputs:
        for path in paths:
            if path is not None:
                for file in model_files(path):
                    self.add(file)
        return self

    def _inode(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        self.inodes.setdefault((st.st_dev, st.st_ino), path)

    def check(self, target: str | Path, folder: bool = False) -> None:
        """Refuse `target` (a file, or with `folder` a folder replaced as a whole) if it touches an input."""
        target = Path(target)
        resolved = target.resolve()
        same = self.files.get(resolved) or self.folders.get(resolved)
        if same is None:
            try:
                st = target.stat()
                same = self.inodes.get((st.st_dev, st.st_ino))
            except OSError:
                pass
        if same is not None:
            which = "" if str(same) == str(target) else f" ({same})"
            raise ValueError(f"{target}: output would overwrite an input{which}; choose another output name or folder")
        if not folder and target.is_dir():  # found now, not after the work when the final rename fails
            raise ValueError(f"{target}: is a folder, so the output file cannot be written there; remove it or "
                             "choose another output name")
        for parent in resolved.parents:
            if parent in self.folders:
                raise ValueError(f"{target}: output would be written into the input folder {self.folders[parent]} "
                                 "and mix with its files; choose an output folder outside it")
        if folder:
            for inside, given in [*self.files.items(), *self.folders.items()]:
                if resolved in inside.parents:
                    raise ValueError(f"{target}: replacing this output folder would delete the input {given} "
                                     "inside it; choose another output")

    def check_all(self, targets: Iterable[str | Path], folders: Iterable[str | Path] = ()) -> None:
        for target in targets:
            self.check(target)
        for target in folders:
            self.check(target, folder=True)


def one_target_each(sources: Sequence[Path], targets: Sequence[Path]) -> None:
    """Refuse two inputs that would be written to one output (same stem in one folder)."""
    seen: dict[Path, Path] = {}
    for src, dst in zip(sources, targets):
        key = dst.resolve()
        if key in seen:
            raise ValueError(f"{dst}: both {seen[key]} and {src} would be written there (same stem)")
        seen[key] = src


def prepare_outputs(inputs: Inputs, targets: Iterable[str | Path], folders: Iterable[str | Path] = ()) -> None:
    """Before writing: refuse outputs that touch an input (`Inputs.check`), then remove the temps a killed run
    left beside them (restoregan.atomic.remove_stale_temps)."""
    targets, folders = [Path(t) for t in targets], [Path(f) for f in folders]
    inputs.check_all(targets, folders)
    remove_stale_temps([*targets, *folders])
