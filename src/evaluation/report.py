"""Writing an evaluation report: metrics.json, metrics.md and comparison.png, which appear together (written
aside, then renamed) and never on or among the inputs; a markdown table, a labelled crop grid (Pillow only), and
what lets a reader check the report: each model's file and its sha256, each crop's source image and box."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from restoregan.atomic import Staged, remove_stale_temps
from restoregan.grids import detail_box
from restoregan.outputs import Inputs
from restoregan.pretrained import sha256_file  # the project's one file hash

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
    """Rows of labelled cells: each cell is an (h, w, 3) [0,1] image fitted into `cell` x `cell` px (aspect kept;
    nearest neighbour, so pixels stay visible; one already that size is pasted as it is) above its label lines."""
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
            factor = cell / max(tile.size)
            size = (max(1, round(tile.width * factor)), max(1, round(tile.height * factor)))
            canvas.paste(tile if tile.size == size else tile.resize(size, Image.NEAREST), (x, y))
            for i, text in enumerate(labels):
                draw.text((x + 2, y + cell + 2 + 16 * i), _fit(draw, text, font, cell - 4), fill="black", font=font)
    return canvas


OUTLINE = (1.0, 0.0, 0.0)  # the crop's rectangle on the overview thumbnail: red


def overview(img: np.ndarray, top: int, left: int, side: int, cell: int = 192) -> np.ndarray:
    """The whole (H, W, 3) [0,1] `img` shrunk to fit `cell` x `cell` (aspect kept; never enlarged) with the crop
    box (`top`, `left`, `side`, in `img`'s pixels) outlined in red at its scaled position, 2 px wide inside it."""
    h, w = img.shape[:2]
    factor = min(1.0, cell / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    thumb = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    if thumb.size != size:
        thumb = thumb.resize(size, Image.BOX)
    x0, y0 = round(left * factor), round(top * factor)
    x1 = min(size[0], max(x0 + 1, round((left + side) * factor))) - 1
    y1 = min(size[1], max(y0 + 1, round((top + side) * factor))) - 1
    ImageDraw.Draw(thumb).rectangle((x0, y0, x1, y1), outline=tuple(round(v * 255) for v in OUTLINE), width=2)
    return np.asarray(thumb, dtype=np.float32) / 255.0


def metric_label(header: str, value: float | None, digits: int) -> str:
    """A score labelled with its report header: "PSNR-Y (dB)" -> "PSNR-Y 30.42 dB", "PSNR (dB, RGB)" ->
    "PSNR 30.42 dB (RGB)", "SSIM-Y" -> "SSIM-Y 0.9123"; "PSNR-Y n/a" where there is no value."""
    found = re.fullmatch(r"(.*?) \((.*)\)", header)
    name, inside = found.groups() if found else (header, None)
    if value is None or inside is None:
        return f"{name} {_fmt(value, digits)}"
    number = _fmt(value, digits)
    parts = [p.strip() for p in inside.split(",")]
    unit = parts.pop(0) if parts[0] == "dB" else None
    return " ".join([name, number, *([unit] if unit else []), *([f"({', '.join(parts)})"] if parts else [])])


def comparison_row(item: str, target: np.ndarray, outputs: dict[str, np.ndarray], values: dict[str, float | None],
                   column: tuple[str, str, int], crop: int, cell: int = 192) -> list[tuple[np.ndarray, list[str]]]:
    """One row of comparison.png for `item`: an overview of the whole target with the crop box outlined (its
    labels: the image name and the box), the target's most detailed `crop` square, then each method's output
    there, labelled with `column`'s metric (key, header, decimals) from `values` (method -> score)."""
    top, left, side = detail_box(target, crop)
    cut = lambda a: a[top : top + side, left : left + side]  # noqa: E731
    _, header, digits = column
    row = [(overview(target, top, left, side, cell), [item, f"crop x={left} y={top} size={side}"]),
           (cut(target), ["target", f"{side}x{side} px"])]
    for name, out in outputs.items():
        row.append((cut(out), [name, metric_label(header, values.get(name), digits)]))
    return row


def checkpoint_record(path: Path) -> dict | None:
    """What metrics.json says about a model's file: its path and sha256; for an export (`x.yaml` beside
    `x.safetensors`) the weights' path and sha256 plus the yaml's. None for a model that was read from no file."""
    path = Path(path)
    if not path.is_file():
        return None
    path = path.absolute()
    weights, yaml = path.with_suffix(".safetensors"), path.with_suffix(".yaml")
    if path.suffix in (".yaml", ".safetensors") and weights.is_file() and yaml.is_file():
        return {"path": str(weights), "sha256": sha256_file(weights), "yaml": str(yaml),
                "yaml_sha256": sha256_file(yaml)}
    return {"path": str(path), "sha256": sha256_file(path)}
