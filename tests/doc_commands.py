"""The commands README.md and docs/*.md show, as a user would type them, and the stand-ins that let a test run them.

A command is a line of a fenced code block that starts with `python`, `make` or `restoregan-` (a trailing `\`
continues it; a `# comment` ends it). Placeholders a reader replaces (`/path/to/HR`, `DIR`, `reel.mp4`, `ckpt=...`)
map to tiny files the test makes; any other word is taken literally, so a doc that names a file the workspace
does not hold fails the test until it is given a stand-in here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT, SHARED_DATA

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_START = re.compile(r"\s*(python3? |make |restoregan-)")


@dataclass(frozen=True)
class Command:
    doc: str  # README.md, docs/PIPELINE.md
    line: int  # where it starts
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def script(self) -> str:
        """`train.py`, `evaluate.py`, `infer.py`, `export.py`, `-m <module>`, `bench/<x>.py`, `make`, `restoregan-*`."""
        if self.argv[0] == "make" or self.argv[0].startswith("restoregan-"):
            return self.argv[0]
        if self.argv[1] == "-m":
            return f"-m {self.argv[2]}"
        return self.argv[1]

    @property
    def args(self) -> list[str]:
        skip = {"make": 1, "-m": 3}.get(self.argv[0] if self.argv[0] == "make" else self.argv[1], 2)
        if self.argv[0].startswith("restoregan-"):
            skip = 1
        return list(self.argv[skip:])


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` inside quotes is kept)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def doc_commands(docs: list[Path] = DOCS) -> list[Command]:
    found = []
    for doc in docs:
        text = doc.read_text()
        for block in _FENCE.finditer(text):
            first = text[: block.start(1)].count("\n") + 1
            lines = block.group(1).splitlines()
            i = 0
            while i < len(lines):
                start = i
                if not _START.match(lines[i]):
                    i += 1
                    continue
                parts = []
                while True:
                    line = _strip_comment(lines[i])
                    i += 1
                    if line.endswith("\\") and i < len(lines):
                        parts.append(line[:-1])
                        continue
                    parts.append(line)
                    break
                argv = tuple(shlex.split(" ".join(parts)))
                found.append(Command(str(doc.relative_to(ROOT)), first + start, argv))
    return found


# --- stand-ins ----------------------------------------------------------------------------------------------------

# Which task a `ckpt=...` / `ckpt=MODEL` placeholder means in each doc (the one the page is about).
DOC_TASK = {"docs/COLORIZATION.md": "colorize", "docs/INTERPOLATION.md": "interp", "docs/RESTORATION.md": "restore"}


def task_of_run(name: str) -> str:
    """The task of a model `runs/<name>/...` in the docs: the word in its run name, else super-resolution."""
    for word, task in (("colorize", "colorize"), ("interp", "interp"), ("restore_video", "restore_video"),
                       ("restore", "restore"), ("denois", "denoise")):
        if word in name:
            return task
    return "sr"


@dataclass
class Workspace:
    """Stand-ins for the placeholders. Names a reader keeps (`reel.mp4`, `photo.png`, `runs/my_run/export/...`)
    are files of `files`, linked into each command's own folder; upper-case words and absolute paths map here."""

    files: Path  # reel.mp4, photo.png, runs/..., linked into the folder each command runs in
    images: Path  # a few small photos (HR, colour photos, clean frames)
    lr: Path  # their x4-smaller versions, same names
    imagefolder: Path  # a Hugging Face imagefolder
    shards: Path  # shards written from `images`

    def value(self, key: str, value: str, doc: str) -> str:
        """The stand-in for `key=value` in `doc` (the value itself when it is no placeholder)."""
        if value.startswith("[") and value.endswith("]"):
            return "[" + ",".join(self.value(key, v, doc) for v in value[1:-1].split(",")) + "]"
        quoted = value[:1] in "'\"" and value[:1] == value[-1:] and len(value) > 1
        if quoted:
            return value[0] + self.value(key, value[1:-1], doc) + value[0]
        if value.startswith("../shared/"):
            return str(SHARED_DATA.parent / value[len("../shared/"):])
        folders = {"/path/to/HR": self.images, "/path/HR": self.images, "/path/LR": self.lr,
                   "/path/to/colour_photos": self.images, "/path/to/clean_frames": self.images, "DIR": self.images,
                   "COLOUR_PHOTOS": self.images, "CLEAN_IMAGES": self.images, "/data/photos": self.images,
                   "/path/to/imagefolder": self.imagefolder, "VIDEO_OR_FRAME_DIR": self.files / "film.mp4",
                   "ORIGINAL": self.files / "reel.mp4"}
        for prefix in ("", "hf:", "hf-stream:", "shards:"):
            rest = value[len(prefix):]
            if value.startswith(prefix) and rest in folders:
                return prefix + str(folders[rest])
        if "/data/shards" in value:  # a brace range names shards that exist: this workspace's
            last = len(list(self.shards.glob("*.tar"))) - 1
            return re.sub(r"\{0+\.\.\d+\}", f"{{{0:06d}..{last:06d}}}", value).replace("/data/shards", str(self.shards))
        if key == "ckpt" and value in ("...", "MODEL", "PATH"):
            return f"runs/tiny_{DOC_TASK.get(doc, 'sr')}/export/generator.safetensors"
        return value


def run_models(commands: list[Command]) -> dict[str, str]:
    """`runs/<name>/export/generator.<ext>` the commands name -> the task of each (from its run name)."""
    found = {}
    for command in commands:
        for arg in command.argv:
            for match in re.finditer(r"runs/([\w-]+)/export/generator\.(safetensors|yaml)", arg):
                found[match.group(0)] = task_of_run(match.group(1))
    return found
