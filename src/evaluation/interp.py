"""Frame-interpolation benchmark behind `evaluate.py` for `interp` models:

    python evaluate.py ckpt=PATH input=VIDEO_OR_FRAME_DIR out_dir=DIR [interp.step=2] [interp.drop_duplicates=true]

For every triplet (i, i + step, i + 2 step) of the input (after dropping pulldown duplicates when asked), the
middle frame is predicted at t = 0.5 from the outer two by each model and by the baselines `repeat` (frame i)
and `blend` (their average); triplets spanning a scene cut are skipped. Scores: PSNR on RGB and SSIM on luma
(`restoregan.training.task_interp.frame_scores`), LPIPS (AlexNet) when its weights are available (else null
with `lpips_note`). Writes metrics.json, metrics.md, comparison.png to out_dir, atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.data.io import quantize, to_numpy, to_tensor
from restoregan.data.video import SceneCutDetector, duplicate_frames, read_frames, windows_without_cuts
from restoregan.evaluation.report import crop_grid, detail_box, write_report
from restoregan.evaluation.sr import Options, load_lpips
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.training.task_interp import frame_scores

BASELINES = ("repeat", "blend")
COLUMNS = [("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("lpips", "LPIPS", 4)]


def evaluate_interp(cfg: DictConfig, models: dict[str, LoadedGenerator], opts: Options) -> dict:
    """Score the baselines and `models` (eval mode, on opts.device) on cfg.input; returns metrics.json's dict."""
    icfg = cfg.interp
    source, out_dir, step = Path(cfg.input), Path(cfg.out_dir), int(icfg.step)
    if step < 1:
        raise ValueError(f"interp.step={step}: must be >= 1 (1 = adjacent frames)")
    frames = read_frames(source, min_frames=2 * step + 1)
    dropped = []
    if icfg.drop_duplicates:
        dropped = duplicate_frames([f.image for f in frames], icfg.duplicate_threshold)
        drop = set(dropped)
        frames = [f for i, f in enumerate(frames) if i not in drop]
    detector = SceneCutDetector(icfg.scene_cut.hist_threshold, icfg.scene_cut.diff_threshold)
    cuts = detector.cuts([f.image for f in frames])
    starts = windows_without_cuts(len(frames), 2 * step, cuts)
    all_starts = len(frames) - 2 * step
    if icfg.max_triplets is not None:  # evenly spread over the clip, not its first seconds
        keep = np.unique(np.linspace(0, len(starts) - 1, int(icfg.max_triplets)).round().astype(int))
        starts = [starts[k] for k in keep] if starts else []
    if not starts:
        raise ValueError(f"{source}: no triplet of frames (step {step}) without a scene cut to evaluate")

    lpips_metric, lpips_note = load_lpips(opts)
    names = [*BASELINES, *models]
    per_item: dict[str, list[dict]] = {name: [] for name in names}
    grid_at = set(np.linspace(0, len(starts) - 1, min(opts.grid_images, len(starts))).round().astype(int).tolist())
    grid_rows = []
    for n, i in enumerate(tqdm(starts, desc=f"interpolating {source.name}", unit="triplet")):
        f0, gt, f1 = (to_tensor(frames[j].image)[None] for j in (i, i + step, i + 2 * step))
        outputs = {"repeat": f0, "blend": 0.5 * (f0 + f1)}
        with torch.inference_mode():
            for name, model in models.items():
                out = model.net(f0.to(opts.device), f1.to(opts.device), 0.5).float().cpu()
                if out.shape != gt.shape:
                    raise ValueError(f"{name}: produced {tuple(out.shape)} for frames of {tuple(gt.shape)}")
                outputs[name] = out
        for name, out in outputs.items():
            out = quantize(out)
            scores = {k: float(v[0]) for k, v in frame_scores(out, gt).items()}
            scores["lpips"] = None
            if lpips_metric is not None:
                with torch.inference_mode():
                    scores["lpips"] = float(lpips_metric(out.to(opts.device), gt.to(opts.device))[0])
            item = {"frame": frames[i + step].name, "from": [frames[i].name, frames[i + 2 * step].name]}
            per_item[name].append({**item, **scores})
        if n in grid_at:
            grid_rows.append(_grid_row(frames[i + step].name, f0, gt, outputs, per_item, opts.grid_crop))

    report = {
        "dataset": cfg.dataset or source.stem,
        "input": str(source),
        "frames": len(frames),
        "duplicates_dropped": len(dropped),
        "step": step,
        "t": 0.5,
        "triplets": len(starts),
        "triplets_skipped_scene_cut": all_starts - len(windows_without_cuts(len(frames), 2 * step, cuts)),
        "scene_cuts_before": [frames[c].name for c in cuts],
        "lpips_note": lpips_note,
        "methods": {name: _summary(per_item[name]) for name in names},
    }
    write_report(out_dir, report, markdown(report), crop_grid(grid_rows), [source])
    return report


def _grid_row(name: str, f0, gt, outputs: dict, per_item: dict, crop: int) -> list:
    """frame0 | ground truth | each method, the crop with the most detail, labelled with PSNR."""
    gt_np = to_numpy(gt)
    top, left, side = detail_box(gt_np, crop)
    cut = lambda t: to_numpy(t.clamp(0, 1))[top : top + side, left : left + side]  # noqa: E731
    row = [(cut(f0), ["frame0"]), (gt_np[top : top + side, left : left + side], ["ground truth", name])]
    row += [(cut(out), [m, f"{per_item[m][-1]['psnr']:.2f} dB"]) for m, out in outputs.items()]
    return row


def _summary(items: list[dict]) -> dict:
    def mean(key: str) -> float | None:
        values = [it[key] for it in items]
        if any(v is None for v in values):
            return None
        finite = [v for v in values if np.isfinite(v)]  # identical frames (PSNR inf) say nothing about the mean
        return float(np.mean(finite)) if finite else None

    return {"psnr": mean("psnr"), "ssim": mean("ssim"), "lpips": mean("lpips"), "images": items}


def markdown(report: dict) -> str:
    dup = f", {report['duplicates_dropped']} duplicate frames dropped" if report["duplicates_dropped"] else ""
    title = (f"{report['dataset']}: {report['triplets']} triplets (step {report['step']}, t = 0.5; "
             f"{report['triplets_skipped_scene_cut']} across scene cuts skipped{dup})")
    lines = [f"### {title}", "", "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |"]
    lines.append("| --- |" + " ---: |" * len(COLUMNS))
    for name, scores in report["methods"].items():
        cells = ["n/a" if scores[k] is None else f"{scores[k]:.{d}f}" for k, _, d in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report.get("lpips_note"):
        lines += ["", f"LPIPS: {report['lpips_note']}"]
    return "\n".join(lines) + "\n"
