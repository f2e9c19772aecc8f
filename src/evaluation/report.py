"""Writing an evaluation report: metrics.json, metrics.md and comparison.png, which appear together (written
aside, then renamed) and never on or among the inputs; a markdown table, a labelled crop grid (Pillow only)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from restoregan.atomic import Staged, remove_stale_temps
from restoregan.outputs import Inputs

REPORT_FILES = ("metrics.json", "metrics.md", "comparison.png")


def json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def report_inputs(cfg: DictConfig) -> Inputs:
    """Everything evaluate.py reads: the model files and the data (hr_dir, lr_dir, input, result)."""
    ckpt = cfg.get("ckpt")
    models = [] if ckpt is None else [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
    inputs = Inputs([cfg.get(key) for key in ("hr_dir", "lr_dir", "input", "result")])
    return inputs.add_models(str(m) for m in models)


def check_report_outputs(cfg: DictConfig) -> None:
    """Before any work: refuse an out_dir whose report would land on, or among, evaluate.py's inputs."""
    report_inputs(cfg).check_all(Path(cfg.out_dir) / name for name in REPORT_FILES)


def write_report(
    out_dir: Path,
    report: dict,
    markdown: str,
    comparison: Image.Image | Callable[[str], object],
    inputs: Iterable[str | Path | None] | Inputs = (),
) -> None:
    """metrics.json, metrics.md and comparison.png (an image, or a function writing a PNG to the path it is
    given) into out_dir, all at once: each is written aside first, and only when all three are complete are
    they renamed into place, so a failure (a full disk) leaves the previous report whole. Temps a killed run
    left are removed first; `inputs` (paths or an `Inputs`) are checked once more."""
    targets = [out_dir / name for name in REPORT_FILES]
    (inputs if isinstance(inputs, Inputs) else Inputs(inputs)).check_all(targets)
    remove_stale_temps(targets)
    with Staged(durable=True) as staged:
        staged.write_bytes(targets[0], json_bytes(report))
        staged.write_bytes(targets[1], markdown.encode())
        if isinstance(comparison, Image.Image):
            staged.write_bytes(targets[2], png_bytes(comparison))
        else:
            staged.write(targets[2], comparison)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(title: str, methods: dict[str, dict], columns: list[tuple[str, str, int]], notes: list[str] = ()) -> str:
    """`### title`, a table with methods as rows and `columns` (key in each method's dict, header, decimals) as
    columns (n/a where a method has no value), then `notes` below it."""
    lines = [f"### {title}", "", "| method | " + " | ".join(h for _, h, _ in columns) + " |"]
    lines.append("| --- |" + " ---: |" * len(columns))
    for name, scores in methods.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(scores.get(k), d) for k, _, d in columns) + " |")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _font(size: int) -> ImageFont.ImageFont:
    try:  # scalable default font (Pillow >= 10.1 with FreeType)
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text


def crop_grid(rows: list[list[tuple[np.ndarray, list[str]]]], cell: int = 192) -> Image.Image:
    """Rows of labelled cells: each cell is an (h, w, 3) [0,1] crop shown `cell` px wide (nearest
    neighbour, so pixels stay visible) above its label lines."""
    font = _font(13)
    n_lines = max((len(labels) for row in rows for _, labels in row), default=1)
    label_h, pad = 16 * n_lines + 4, 4
    n_cols = max(len(row) for row in rows)
    width = n_cols * (cell + pad) + pad
    height = len(rows) * (cell + label_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = pad + r * (cell + label_h + pad)
        for c, (crop, labels) in enumerate(row):
            x = pad + c * (cell + pad)
            tile = Image.fromarray(np.round(np.clip(crop, 0, 1) * 255).astype(np.uint8))
            canvas.paste(tile.resize((cell, cell), Image.NEAREST), (x, y))
            for i, text in enumerate(labels):
                draw.text((x + 2, y + cell + 2 + 16 * i), _fit(draw, text, font, cell - 4), fill="black", font=font)
    return canvas


def detail_box(img: np.ndarray, size: int) -> tuple[int, int, int]:
    """(top, left, side) of the `size` square with the most gradient energy: where methods differ visibly."""
    h, w = img.shape[:2]
    side = min(size, h, w)
    grey = img.mean(axis=-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    best, box = -1.0, (0, 0)
    step = max(side // 4, 1)
    for top in range(0, h - side + 1, step):
        for left in range(0, w - side + 1, step):
            b, r = min(top + side, h - 1), min(left + side, w - 1)
            total = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if total > best:
                best, box = total, (top, left)
    return box[0], box[1], side
