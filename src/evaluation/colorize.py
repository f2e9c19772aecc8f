"""Colorization benchmark: colour photos are greyed, coloured by each model and compared with the originals.

Metrics per method (the grey input is the baseline "grey"): RGB PSNR/SSIM against the original, mean
CIEDE2000 delta E, Hasler-Suesstrunk colourfulness (the originals' mean is a header key), FID over the set
when torchmetrics' Inception weights can be had (null plus `fid_note` otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.data.color import luminance
from restoregan.data.colorize_dataset import holdout_split, to_grey
from restoregan.data.datasets import skimage_photos
from restoregan.data.io import list_images, quantize, read_image, to_numpy, to_tensor
from restoregan.evaluation.report import crop_grid, detail_box, write_report
from restoregan.evaluation.sr import Options, refuse_small
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.inference.colorize import model_render_size, model_space
from restoregan.metrics.color import FID, colorfulness, delta_e, psnr_rgb, ssim_rgb
from restoregan.training.task_colorize import colorize

METRICS = ("psnr", "ssim", "delta_e", "colorfulness")
COLUMNS = [("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (RGB)", 4), ("delta_e", "CIEDE2000 ΔE", 2),
           ("colorfulness", "colourfulness", 1), ("fid", "FID", 1)]


def colour_photos(source: str, holdout_every: int | None = None) -> list[Path]:
    """A folder of colour photos, or "skimage:val" / "skimage:train" / "skimage:all" (the wheel's photos).
    holdout_every=N: only the folder's photos that training with `holdout_every: N` held out (every N-th)."""
    if source.startswith("skimage"):
        return skimage_photos(source.split(":")[1] if ":" in source else "val")
    return holdout_split(list_images(source), holdout_every, held_out=True)


def is_grey(img: np.ndarray) -> bool:
    """No channel differs from the mean by a grey level: nothing to score colour against."""
    return bool(np.abs(img - img.mean(axis=2, keepdims=True)).max() < 1 / 255)


def evaluate_colorize(cfg: DictConfig, models: dict[str, LoadedGenerator], opts: Options) -> dict:
    """Score the grey baseline and `models` on cfg.hr_dir; write metrics.json, metrics.md, comparison.png."""
    ccfg = cfg.colorize
    source, out_dir = str(cfg.hr_dir), Path(cfg.out_dir)
    paths = colour_photos(source, ccfg.get("holdout_every"))
    refuse_small(paths, 11, "SSIM's 11x11 Gaussian window")
    names = ["grey", *models]
    render = {name: model_render_size(ccfg.render_size, m) for name, m in models.items()}
    fids: dict[str, FID | None] = {name: None for name in names}
    fid_note = "disabled (colorize.fid=false)"
    if ccfg.fid:
        for name in names:
            fids[name], fid_note = FID.create(opts.device)
            if fids[name] is None:
                break
    per_image: dict[str, list[dict]] = {name: [] for name in names}
    original_colorfulness, grid_rows = [], []

    skipped = []
    for path in tqdm(paths, desc="colorizing", unit="img"):
        original = read_image(path)
        if is_grey(original):  # e.g. Set14's two grey images: every method would score perfectly on chroma
            skipped.append(path.name)
            continue
        grey = quantize(to_grey(original))  # what a scanned black-and-white print of it holds
        outputs = {"grey": grey}
        for name, m in models.items():
            lum = luminance(to_tensor(grey)[None].to(opts.device), model_space(m))
            with torch.no_grad():
                rgb = colorize(m.net, lum, model_space(m), render[name])
            outputs[name] = quantize(to_numpy(rgb[0].cpu()))
        original_colorfulness.append(colorfulness(original))
        for name, out in outputs.items():
            scores = {"psnr": psnr_rgb(out, original), "ssim": ssim_rgb(out, original),
                      "delta_e": delta_e(out, original), "colorfulness": colorfulness(out)}
            per_image[name].append({"image": path.name, **scores})
            if fids[name] is not None:
                fids[name].update(original, real=True)
                fids[name].update(out, real=False)
        if len(grid_rows) < opts.grid_images:
            top, left, side = detail_box(original, 2 * opts.grid_crop)
            crop = lambda a: a[top : top + side, left : left + side]  # noqa: E731
            row = [(crop(original), ["original", path.name])]
            row += [(crop(outputs[n]), [n, f"dE2000 {per_image[n][-1]['delta_e']:.2f}"]) for n in names]
            grid_rows.append(row)

    if not per_image["grey"]:
        raise ValueError(f"{source}: only grey images; colorization is scored on colour photos")
    methods = {}
    for name in names:
        images = per_image[name]
        summary = {k: float(np.mean([im[k] for im in images])) for k in METRICS}
        summary["fid"] = fids[name].compute() if fids[name] is not None else None
        methods[name] = {**summary, "images": images}
    report = {
        "dataset": cfg.dataset or Path(source).name,
        "hr_dir": source,
        "task": "colorize",
        "render_size": render,
        "colorfulness_original": float(np.mean(original_colorfulness)),
        "skipped_grey_images": skipped,
        "fid_note": None if all(f is not None for f in fids.values()) else fid_note,
        "methods": methods,
    }
    write_report(out_dir, report, markdown(report), crop_grid(grid_rows), [source])
    return report


def markdown(report: dict) -> str:
    fmt = lambda v, d: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [f"### {report['dataset']}: colorization ({len(next(iter(report['methods'].values()))['images'])} photos)",
             "", "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name, scores in report["methods"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(scores[k], d) for k, _, d in COLUMNS) + " |")
    lines += ["", f"Colourfulness of the originals: {report['colorfulness_original']:.1f}"]
    if report["fid_note"]:
        lines.append(f"FID: {report['fid_note']}")
    return "\n".join(lines) + "\n"
