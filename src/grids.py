"""Labelled image grids (rows of equally sized columns) for validation and comparison figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from restoregan.atomic import atomic_write

LABEL_HEIGHT = 14


def save_grid(rows: list[list[tuple[str, Tensor]]], path: str | Path, max_side: int = 256) -> np.ndarray:
    """Write rows of (label, (3,H,W) tensor in [0,1]) as one PNG, atomically; returns the grid as (H,W,3) uint8.

    Cells are resized (nearest, so pixels stay visible) to the first cell's size, at most `max_side` pixels.
    """
    canvas = grid_image(rows, max_side)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return np.asarray(canvas)


def grid_image(rows: list[list[tuple[str, Tensor]]], max_side: int = 256) -> Image.Image:
    """The grid `save_grid` writes, as an image (for callers that stage it with other files)."""
    h, w = rows[0][0][1].shape[-2:]
    factor = min(1.0, max_side / max(h, w))
    cell_w, cell_h = max(1, round(w * factor)), max(1, round(h * factor))
    n_cols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (n_cols * cell_w, len(rows) * (cell_h + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = r * (cell_h + LABEL_HEIGHT)
        for c, (label, img) in enumerate(row):
            arr = (img.clamp(0, 1).permute(1, 2, 0).float().numpy() * 255.0 + 0.5).astype(np.uint8)
            cell = Image.fromarray(arr).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(cell, (c * cell_w, y + LABEL_HEIGHT))
            draw.text((c * cell_w + 2, y + 1), label, fill="black")
    return canvas
