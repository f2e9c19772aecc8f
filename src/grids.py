"""Labelled image grids (rows of columns) for validation, comparison and contact-sheet figures, and the crop
with the most detail (where methods differ visibly)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from restoregan.atomic import atomic_write

LABEL_HEIGHT = 14
Box = tuple[int, int, int, int]  # (x, y, width, height) of a cell's image on the canvas


def save_grid(rows: list[list[tuple[str, Tensor]]], path: str | Path, max_side: int = 256) -> np.ndarray:
    """Write rows of (label, (3,H,W) tensor in [0,1]) as one PNG, atomically; returns the grid as (H,W,3) uint8.

    Cells are resized (nearest, so pixels stay visible) to the first cell's size, at most `max_side` pixels.
    """
    canvas = grid_image(rows, max_side)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return np.asarray(canvas)


def grid_layout(rows: list[list[tuple[str, Tensor]]], max_side: int = 256, full_size: Collection[int] = ()
                ) -> tuple[list[list[Box]], tuple[int, int]]:
    """Where `grid_image` puts each cell's image, and the canvas (width, height). Cells take the first cell's
    size, shrunk to at most `max_side`; cells of the columns in `full_size` keep their own size (detail crops at
    full resolution). A column is as wide as its widest cell, a row as tall as its tallest, plus its label."""
    h, w = rows[0][0][1].shape[-2:]
    factor = min(1.0, max_side / max(h, w))
    cell_w, cell_h = max(1, round(w * factor)), max(1, round(h * factor))

    def size(c: int, img: Tensor) -> tuple[int, int]:
        return (int(img.shape[-1]), int(img.shape[-2])) if c in full_size else (cell_w, cell_h)

    n_cols = max(len(r) for r in rows)
    widths = [max((size(c, row[c][1])[0] for row in rows if c < len(row)), default=cell_w) for c in range(n_cols)]
    xs = np.concatenate([[0], np.cumsum(widths)]).tolist()
    boxes, y = [], 0
    for row in rows:
        sizes = [size(c, img) for c, (_, img) in enumerate(row)]
        boxes.append([(xs[c], y + LABEL_HEIGHT, cw, ch) for c, (cw, ch) in enumerate(sizes)])
        y += LABEL_HEIGHT + max(ch for _, ch in sizes)
    return boxes, (int(xs[-1]), y)


def grid_image(rows: list[list[tuple[str, Tensor]]], max_side: int = 256, full_size: Collection[int] = ()
               ) -> Image.Image:
    """The grid `save_grid` writes, as an image (for callers that stage it with other files); `full_size`: see
    `grid_layout`. Each label is written above its cell."""
    boxes, (width, height) = grid_layout(rows, max_side, full_size)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for row, row_boxes in zip(rows, boxes):
        for (label, img), (x, y, cw, ch) in zip(row, row_boxes):
            arr = (img.clamp(0, 1).permute(1, 2, 0).float().numpy() * 255.0 + 0.5).astype(np.uint8)
            cell = Image.fromarray(arr)
            if cell.size != (cw, ch):
                cell = cell.resize((cw, ch), Image.NEAREST)
            canvas.paste(cell, (x, y))
            draw.text((x + 2, y - LABEL_HEIGHT + 1), label, fill="black")
    return canvas


def detail_box(img: np.ndarray, size: int) -> tuple[int, int, int]:
    """(top, left, side) of the `size` square of (H, W, C) `img` with the most gradient energy."""
    h, w = img.shape[:2]
    side = min(size, h, w)
    grey = img.astype(np.float32).mean(axis=-1)  # float: uint8 differences would wrap
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
