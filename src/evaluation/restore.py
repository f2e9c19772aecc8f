"""Film-restoration benchmark: clean images are damaged by the film model (deterministically: image i with
`np.random.default_rng([restore.seed, i])`), restored by each model and compared with the clean images.

Methods: "damaged" (the input itself), "median" (its 3x3 median) and each model. Metrics: RGB PSNR/SSIM on
8-bit images, no border crop (for grey film every channel is the grey level); LPIPS (AlexNet, RGB) or null with
`lpips_note`. With grey models (or `restore.grey=true`) the references are the images' BT.601 grey versions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.data.film_damage import FilmDamage
from restoregan.data.film_dataset import damaged_pair
from restoregan.data.io import list_images, quantize, read_image, to_numpy, to_tensor, write_image
from restoregan.evaluation.colorize import colour_photos
from restoregan.evaluation.report import crop_grid, detail_box, report_inputs, write_report
from restoregan.evaluation.sr import Options, dataset_name, load_lpips, min_side, refuse_small
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.inference.tiled import upscale
from restoregan.training.task_restore import median3, scores

COLUMNS = [("psnr", "PSNR (dB, RGB)", 2), ("ssim", "SSIM (RGB)", 4), ("lpips", "LPIPS", 4)]
BASELINES = ("damaged", "median")


def report_grey(configured: bool | None, models: dict[str, LoadedGenerator]) -> bool:
    """`restore.grey`, else the models' own (they must agree), else true (archive film)."""
    if configured is not None:
        return bool(configured)
    found = {bool(m.meta.get("grey", True)) for m in models.values()}
    if len(found) > 1:
        raise ValueError("models trained on grey and on colour frames cannot share a report; set restore.grey=true|false")
    return found.pop() if found else True


def evaluate_restore(cfg: DictConfig, models: dict[str, LoadedGenerator], opts: Options) -> dict:
    """Score the baselines and `models` on cfg.hr_dir; write metrics.json, metrics.md, comparison.png (and the
    damaged inputs under out_dir/damaged/ with restore.save_inputs)."""
    rcfg = cfg.restore
    source, out_dir = str(cfg.hr_dir), Path(cfg.out_dir)
    if any(name in BASELINES for name in models):
        raise ValueError(f"a checkpoint may not be named {' or '.join(BASELINES)} (a baseline's name); rename it")
    paths = colour_photos(source) if source.startswith("skimage") else _clean_images(Path(source))
    if rcfg.save_inputs:  # the damaged/clean copies must not land on (or among) the clean images
        copies = [out_dir / sub / f"{p.stem}.png" for p in paths for sub in ("damaged", "clean")]
        report_inputs(cfg).check_all(copies)
    damage: FilmDamage = instantiate(rcfg.damage)
    grey = report_grey(rcfg.grey, models)
    lpips_metric, lpips_note = load_lpips(opts)
    refuse_small(paths, *min_side(11, "SSIM's 11x11 Gaussian window", lpips_metric, opts.lpips_net))
    names = [*BASELINES, *models]
    per_image: dict[str, list[dict]] = {name: [] for name in names}
    grid_rows = []

    for i, path in enumerate(tqdm(paths, desc="restoring", unit="img")):
        damaged, clean = damaged_pair(read_image(path), np.random.default_rng([rcfg.seed, i]), damage, grey)
        if rcfg.save_inputs:
            write_image(out_dir / "damaged" / f"{path.stem}.png", damaged)
            write_image(out_dir / "clean" / f"{path.stem}.png", clean)
        outputs = {"damaged": damaged, "median": median3(damaged)}
        x = to_tensor(damaged)[None]
        for name, m in models.items():
            y = upscale(m.net, x, 1, opts.tile, opts.tile_overlap, opts.device)
            outputs[name] = quantize(to_numpy(y[0].cpu()))
        for name, out in outputs.items():
            entry = {"image": path.name, **scores(out, clean), "lpips": None}
            if lpips_metric is not None:
                pair = [to_tensor(a)[None].to(opts.device) for a in (out, clean)]
                entry["lpips"] = float(lpips_metric(*pair)[0])
            per_image[name].append(entry)
        if len(grid_rows) < opts.grid_images:
            top, left, side = detail_box(clean, opts.grid_crop)
            crop = lambda a: a[top : top + side, left : left + side]  # noqa: E731
            row = [(crop(clean), ["clean", path.name])]
            row += [(crop(outputs[n]), [n, f"{per_image[n][-1]['psnr']:.2f} dB"]) for n in names]
            grid_rows.append(row)

    report = {
        "dataset": cfg.dataset or (source if source.startswith("skimage") else dataset_name(Path(source))),
        "hr_dir": source,
        "task": "restore",
        "grey": grey,
        "seed": int(rcfg.seed),
        "metric_note": "PSNR/SSIM on RGB of 8-bit images, no border crop; LPIPS on RGB",
        "lpips_note": lpips_note,
        "methods": {name: _summary(per_image[name]) for name in names},
    }
    write_report(out_dir, report, markdown(report), crop_grid(grid_rows), [source])
    return report


def _clean_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder of clean images not found")
    return list_images(folder)


def _summary(images: list[dict]) -> dict:
    mean = lambda key: None if images[0][key] is None else float(np.mean([im[key] for im in images]))  # noqa: E731
    return {"psnr": mean("psnr"), "ssim": mean("ssim"), "lpips": mean("lpips"), "images": images}


def markdown(report: dict) -> str:
    fmt = lambda v, d: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    n = len(report["methods"]["damaged"]["images"])
    kind = "grey" if report["grey"] else "colour"
    lines = [f"### {report['dataset']}: film restoration ({n} {kind} images, damage seed {report['seed']})", "",
             "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name, s in report["methods"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(s[k], d) for k, _, d in COLUMNS) + " |")
    if report["lpips_note"]:
        lines += ["", f"LPIPS: {report['lpips_note']}"]
    return "\n".join(lines) + "\n"
