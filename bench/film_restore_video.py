"""Bench (issue 15): the temporal film restorer against the single-frame one, trained side by side for the same
wall time, scored on held-out damaged clips and on real footage.

python bench/film_restore_video.py [--skip-train] [--minutes 20] [--temporal-iters N] [--single-iters M] [--smoke]
    -> bench/results/film_restore_video.json (--smoke: film_restore_video_smoke.json) and a printed markdown table

1. Both quickstarts train AT THE SAME TIME, each in its own process with one thread (train.py
   experiment=film_restore_video_quickstart / film_restore_quickstart ... data.num_workers=1 logger=csv), so each
   gets one of the two cores; their exports are copied to runs/bench_film_video/models/{temporal,single}.* so that
   evaluate.py names the methods "temporal" and "single".
2. Held-out clips (clean frames neither model saw: the scikit-image validation photos, Set5, Set14 and the every-10th
   hold-out of the ImageNet sample), each photo filmed by the synthetic motion and damaged by the film model with
   a fixed seed: `evaluate.py ckpt='[temporal,single]'` scores the task's baselines (the damaged input, medians),
   the temporal model on the whole clip and the single-frame model frame by frame, on the same clips.
3. Real footage (../shared/data/footage): infer.py with each model, then `evaluate.py input=... result=...`
   (flicker relative to the input, with the fidelity checks that a black or blurred result fails), and a contact
   sheet per clip (rows: frames, columns: input | single | temporal; last row: a 1:1 pixel crop where the input
   has the most fine-scale damage) in runs/bench_film_video/contact_sheets/ (they hold the footage's own
   pixels, which stay in ../shared).

--smoke: 4 iterations each, two photos per held-out set on 96x96 clips, the first 12 frames of each footage clip: checks
the script end to end in about 4 minutes (everything but its json in runs/bench_film_video_smoke/, never the real run's
models).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

from training import machine, run

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
TRAIN_MINUTES = 20  # the budget for each model
# pretrain_iters of each (plus the quickstarts' own 50 discriminator and 150 GAN iterations), chosen so each run fits
# TRAIN_MINUTES with the other beside it. Both quickstarts train in bf16-mixed where the CPU does bf16 natively
# (trainer.precision=fast): on 2026-12-03 (conv3x3 peak 210 GFLOP/s on 2 threads, a slow day for this machine; 366 on
# 2026-12-02) 1000 temporal iterations took 20.8 minutes and 5400 single-frame ones 19.4. Check
# training.*.within_budget in the result
TEMPORAL_ITERS = 900
SINGLE_ITERS = 5400
BAR_DB = 1.0  # done when: temporal - single, pooled PSNR over all held-out clips
FLICKER_BAR = 0.8  # done when: temporal's warp error relative to the input on each footage clip
HOLDOUT_EVERY = 10  # the ImageNet sample's hold-out rule of conf/data/film_clips.yaml
MIN_SIDE = 128  # held-out photos smaller than this are left out (clips are 3/4 of a side, at least 96: never upscaled)
FOOTAGE = [SHARED / "footage" / "a_bomb_blast_effects_part.mp4", SHARED / "footage" / "old_film_frames_001",
           SHARED / "footage" / "old_film_frames_003"]
VIDEO_FRAMES = 96  # of the newsreel's 360 (CPU time); frame folders are restored whole
SHEET_ROWS = 3  # frames per contact sheet
SHEET_CELL = 320  # px: a frame's cell in the contact sheet (frames are shrunk to fit)
CROP = 160  # px: side of the 1:1 crop
SMOKE = {"iters": 4, "train": ["d_pretrain_iters=0", "gan_iters=0", "val_every=4"], "photos": 2, "clip_size": 96,
         "video_frames": 12}
MODELS = ("single", "temporal")  # the report names of the two models; every other method is a task baseline
BASELINE_HEADERS = {"damaged": "damaged", "median": "median 3x3", "temporal_median": "temporal median 3"}


# --- pure helpers (tests/test_bench_film_video.py) ----------------------------------------------------------
def _summary(reports: dict[str, dict]) -> dict:
    """Figures over every clip of `reports` (set name -> evaluate.py's methods: name -> {images: [{psnr, ssim}]}).
    Means over finite values, as evaluate.py's: a clip with a frame identical to its reference (a damaged frame
    the damage left clean) scores PSNR inf; such clips are counted, and gains are means of per-clip differences
    over the clips where both methods are finite, so an easy clip missing from one side cannot bias them."""
    first = next(iter(reports.values()))
    methods = [m for m in first if m not in MODELS] + list(MODELS)  # the baselines, then single and temporal
    per = {key: {m: [im[key] for r in reports.values() for im in r[m]["images"]] for m in methods
                 if all(m in r for r in reports.values())} for key in ("psnr", "ssim")}
    finite = lambda v: [x for x in v if np.isfinite(x)]  # noqa: E731

    def gain(a: str, b: str) -> float | None:
        diffs = [x - y for x, y in zip(per["psnr"][a], per["psnr"][b]) if np.isfinite(x) and np.isfinite(y)]
        return round(float(np.mean(diffs)), 3) if diffs else None

    t, s = per["psnr"]["temporal"], per["psnr"]["single"]
    infinite = {m: n for m, v in per["psnr"].items() if (n := len(v) - len(finite(v)))}
    return {
        "clips": len(t),
        "psnr": {m: round(float(np.mean(finite(v))), 3) for m, v in per["psnr"].items() if finite(v)},
        "ssim": {m: round(float(np.mean(finite(v))), 4) for m, v in per["ssim"].items() if finite(v)},
        "gain_over_single_db": gain("temporal", "single"),
        "gain_over_damaged_db": gain("temporal", "damaged"),
        "clips_temporal_beats_single": int(sum(a > b for a, b in zip(t, s))),
        **({"clips_with_infinite_psnr": infinite} if infinite else {}),
    }


def set_summary(methods: dict) -> dict:
    """One evaluate.py report's methods (name -> {psnr, ssim, images: [{image, psnr, ssim}]}) -> the bench's
    figures: means, gains of temporal over single and over damaged, and the clips temporal wins."""
    return _summary({"": methods})


def pooled(reports: dict[str, dict]) -> dict | None:
    """Set name -> report methods, pooled: means over every clip of every set (not a mean of the set means)."""
    return {"sets": list(reports), **_summary(reports)} if reports else None


def footage_figures(report: dict) -> dict:
    """evaluate.py's temporal report -> the figures compared side by side."""
    fid = report["fidelity"]
    return {"relative": report["relative"], "gradient_ssim": fid["gradient_ssim"],
            "sharpness_ratio": fid["sharpness_ratio"], "moving_gradient_ssim": fid["moving_gradient_ssim"],
            "verdict": report["verdict"], "flicker_reduced": report["flicker_reduced"], "pairs": report["pairs"]}


def done_when(pool: dict | None, footage: dict[str, dict]) -> dict:
    """The issue's bars: pooled held-out gain of temporal over single >= BAR_DB; on each footage clip temporal's
    relative flicker < FLICKER_BAR with the fidelity verdict passing (None where not measured)."""
    gain = pool["gain_over_single_db"] if pool else None
    clips = {name: {"relative_below": bool(f["temporal"]["relative"] is not None
                                           and f["temporal"]["relative"] < FLICKER_BAR),
                    "verdict_passes": bool(f["temporal"]["flicker_reduced"])}
             for name, f in footage.items() if "temporal" in f}
    every = [c["relative_below"] and c["verdict_passes"] for c in clips.values()]
    return {f"pooled_gain_over_single_{BAR_DB:g}db": None if gain is None else bool(gain >= BAR_DB),
            "pooled_gain_over_single_db": gain,
            f"footage_relative_below_{FLICKER_BAR:g}_and_verdict": clips,
            "footage_all_pass": bool(all(every)) if len(every) == len(FOOTAGE) else None}


def markdown(results: dict) -> str:
    """The held-out and footage tables, as bench/README.md shows them."""
    f2 = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    f3 = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    db = lambda v: "n/a" if v is None else f"{v:+.2f} dB"  # noqa: E731
    rows = dict(results.get("held_out", {}))
    if results.get("held_out_all"):
        rows["**all (pooled)**"] = results["held_out_all"]
    methods = list(next(iter(rows.values()))["psnr"]) if rows else list(MODELS)
    lines = ["| held out | clips | " + " | ".join(BASELINE_HEADERS.get(m, m) for m in methods)
             + " | temporal - single | temporal - damaged | clips temporal > single |",
             "| --- | ---: |" + " ---: |" * (len(methods) + 3)]
    for name, r in rows.items():
        p, s = r["psnr"], r["ssim"]
        cell = lambda m: f"{f2(p.get(m))} / {'n/a' if s.get(m) is None else format(s[m], '.4f')}"  # noqa: E731
        lines.append(f"| {name} | {r['clips']} | " + " | ".join(cell(m) for m in methods)
                     + f" | {db(r['gain_over_single_db'])} | {db(r['gain_over_damaged_db'])} | "
                     f"{r['clips_temporal_beats_single']}/{r['clips']} |")
    lines += ["", "PSNR (dB) / SSIM, RGB of 8-bit frames, mean over clips (finite values; gains: mean per-clip "
              "difference)", ""]
    for name, r in rows.items():
        if r.get("clips_with_infinite_psnr"):
            lines[-1:-1] = [f"{name}: clips out of a method's mean (a frame equal to its reference, PSNR inf): "
                            f"{r['clips_with_infinite_psnr']}"]
    if results.get("footage"):
        lines += ["| footage | model | relative flicker | gradient SSIM | sharpness ratio | moving gradient SSIM "
                  "| verdict |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for clip, by_model in results["footage"].items():
            for model in ("single", "temporal"):
                f = by_model.get(model)
                if f:
                    lines.append(f"| {clip} | {model} | {f3(f['relative'])} | {f3(f['gradient_ssim'])} | "
                                 f"{f3(f['sharpness_ratio'])} | {f3(f['moving_gradient_ssim'])} | {f['verdict']} |")
    return "\n".join(lines)


def pick_frames(n: int, k: int = SHEET_ROWS) -> list[int]:
    """k frame indices spread over n frames (the middle of k equal parts), fewer when n < k."""
    return sorted({min(n - 1, (2 * i + 1) * n // (2 * k)) for i in range(k)}) if n > 0 else []


def damage_box(img: np.ndarray, side: int) -> tuple[int, int, int]:
    """(top, left, side) of the `side` square of (H, W, 3) `img` with the most fine-scale energy: |luma - its 3x3
    median|, which dust, scratches and grain raise and smooth scene edges mostly do not."""
    from scipy.ndimage import median_filter

    grey = img.astype(np.float64).mean(axis=-1)
    energy = np.abs(grey - median_filter(grey, size=3, mode="nearest"))
    h, w = energy.shape
    side = min(side, h, w)
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), side


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) [0, 1] `img` shrunk (area average) so its longer side is at most `side`; never enlarged."""
    from PIL import Image

    h, w = img.shape[:2]
    factor = side / max(h, w)
    if factor >= 1:
        return img
    tile = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    return np.asarray(tile.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BOX)) / 255.0


def grid(rows: list[list[tuple[np.ndarray, str]]], pad: int = 4, line: int = 16):
    """A PIL image of labelled cells, each (H, W, 3) [0, 1] image pasted as it is (8-bit, no resizing), its label
    below; columns as wide as their widest cell, rows as tall as their tallest."""
    from PIL import Image, ImageDraw, ImageFont

    try:  # scalable default font (Pillow >= 10.1 with FreeType)
        font = ImageFont.load_default(size=13)
    except (TypeError, OSError, ImportError):
        font = ImageFont.load_default()
    n_cols = max(len(r) for r in rows)
    widths = [max(r[c][0].shape[1] for r in rows if c < len(r)) for c in range(n_cols)]
    heights = [max(img.shape[0] for img, _ in r) + line + 2 for r in rows]
    canvas = Image.new("RGB", (sum(widths) + pad * (n_cols + 1), sum(heights) + pad * (len(rows) + 1)), "white")
    draw = ImageDraw.Draw(canvas)
    y = pad
    for r, row in enumerate(rows):
        x = pad
        for c, (img, label) in enumerate(row):
            canvas.paste(Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)), (x, y))
            draw.text((x + 2, y + img.shape[0] + 2), label, fill="black", font=font)
            x += widths[c] + pad
        y += heights[r] + pad
    return canvas


def contact_sheet(columns: dict[str, list[np.ndarray]], names: list[str], crop: int = CROP, cell: int = SHEET_CELL):
    """A PIL image: a row per frame (columns: each method's frame, shrunk to fit `cell`), then a row of 1:1 pixel
    crops (`crop` square, never resized) of the middle frame where the first column (the input) has the most
    fine-scale damage. `columns`: method -> frames (H, W, 3) in [0, 1], all the same size, aligned with `names`."""
    rows = [[(shrink(frames[i], cell), f"{method}: {names[i]}") for method, frames in columns.items()]
            for i in range(len(names))]
    middle = len(names) // 2
    top, left, side = damage_box(next(iter(columns.values()))[middle], crop)
    rows.append([(frames[middle][top:top + side, left:left + side], f"{method} 1:1 {names[middle]} x={left} y={top}")
                 for method, frames in columns.items()])
    return grid(rows)


# --- the runs -----------------------------------------------------------------------------------------------
def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_both(jobs: dict[str, list[str]], logs: Path) -> dict[str, dict]:
    """Start every training at once (one thread each), wait for all; per job its wall and CPU minutes (its own
    process tree's, from wait4: RUSAGE_CHILDREN would mix the two)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name, args in jobs.items():
        print(f"$ OMP_NUM_THREADS=1 python {shlex.join(args)}   > {logs.relative_to(ROOT) / name}.log", flush=True)
        with open(logs / f"{name}.log", "w") as log:
            procs[name] = (subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env(), stdout=log,
                                            stderr=subprocess.STDOUT), time.time())
    figures, failed = {}, []
    while len(figures) < len(procs):  # each as it ends, so its wall time is its own
        time.sleep(1)
        for name, (proc, start) in procs.items():
            if name in figures:
                continue
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == 0:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            figures[name] = {"wall_minutes": round((time.time() - start) / 60, 2),
                             "cpu_minutes": round((usage.ru_utime + usage.ru_stime) / 60, 2)}
            print(f"  {name}: {figures[name]['wall_minutes']} min wall, {figures[name]['cpu_minutes']} min CPU",
                  flush=True)
            if proc.returncode != 0:
                failed.append(name)
    if failed:
        sys.exit(f"error: training {', '.join(failed)} failed; see {', '.join(str(logs / f) + '.log' for f in failed)}")
    return figures


def copy_export(run_name: str, models: Path, method: str) -> dict:
    """runs/<run_name>/export/generator.* -> models/<method>.*; the export's iteration count."""
    import yaml

    models.mkdir(parents=True, exist_ok=True)
    export = ROOT / "runs" / run_name / "export"
    for suffix in (".safetensors", ".yaml"):
        shutil.copyfile(export / f"generator{suffix}", models / f"{method}{suffix}")
    return {"iterations": yaml.safe_load((export / "generator.yaml").read_text()).get("iterations")}


def photo_folder(folder: Path, photos: list[Path]) -> Path:
    """A folder of symlinks to `photos` (rebuilt each run), for evaluate.py's hr_dir."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for p in photos:
        (folder / p.name).symlink_to(p.resolve())
    return folder


def single_training_photos(work: Path) -> list[str]:
    """The optional photo folders of conf/data/film_clips.yaml as the single-frame data takes them: BSD100, and the
    ImageNet sample's training part (its every-10th hold-out left out, as the clip data does) as a folder of
    symlinks without the photos too small for a 70 px view (the clip data skips those; FilmDataset would refuse)."""
    from PIL import Image

    from restoregan.data.datasets import holdout_split
    from restoregan.data.io import list_images

    folders = [SHARED / "benchmarks/BSD100/x4/HR"]
    imagenet = SHARED / "photos" / "imagenet_sample"
    if imagenet.is_dir():
        train = [p for p in holdout_split(list_images(imagenet), HOLDOUT_EVERY, held_out=False)
                 if min(Image.open(p).size) >= 70]
        folders.append(photo_folder(work / "imagenet_train", train))
    return [rel(f) for f in folders if f.exists()]


def held_out_sets(work: Path, smoke: bool) -> dict[str, str | Path]:
    """name -> hr_dir of each present held-out set (absent ones named and skipped)."""
    from PIL import Image

    from restoregan.data.datasets import holdout_split, skimage_photos
    from restoregan.data.io import list_images

    sets: dict[str, str | Path] = {"skimage_val": "skimage:val", "Set5": SHARED / "benchmarks/Set5/x4/HR",
                                   "Set14": SHARED / "benchmarks/Set14/x4/HR"}
    imagenet = SHARED / "photos" / "imagenet_sample"
    if imagenet.is_dir():
        held = holdout_split(list_images(imagenet), HOLDOUT_EVERY, held_out=True)
        small = [p for p in held if min(Image.open(p).size) < MIN_SIDE]
        if small:
            print(f"imagenet_holdout: leaving out {len(small)} photo(s) under {MIN_SIDE} px: {[p.name for p in small]}")
        sets["imagenet_holdout"] = photo_folder(work / "imagenet_holdout", [p for p in held if p not in small])
    else:
        print(f"skipping imagenet_holdout: {imagenet} not found")
    present = {}
    for name, source in sets.items():
        if isinstance(source, Path) and not source.exists():
            print(f"skipping {name}: {source} not found")
            continue
        if smoke:  # a handful of clips
            photos = [Path(p) for p in skimage_photos("val")] if source == "skimage:val" else list_images(source)
            source = photo_folder(work / f"smoke_{name}", photos[: SMOKE["photos"]])
        present[name] = source
    return present


def find_result(out: Path, stem: str) -> Path:
    """infer.py's result: <out>/<stem>_restored(.mkv | folder of frames) of the video path, else <out> itself
    (a single-frame model writes each frame of a folder as <out>/<frame>_restored.png)."""
    for candidate in (out / f"{stem}_restored.mkv", out / f"{stem}_restored"):
        if candidate.exists():
            return candidate
    return out


def read_frames(source: Path, indices: list[int]) -> tuple[list[np.ndarray], list[str]]:
    from restoregan.data.video import iter_frames

    picked = [f for f in islice(iter_frames(source), max(indices) + 1) if f.index in indices]
    return [f.image for f in picked], [f.name for f in picked]


def write_sheet(path: Path, clip: Path, results: dict[str, Path], frames: int) -> None:
    from restoregan.atomic import atomic_write

    indices = pick_frames(frames)
    first, names = read_frames(clip, indices)
    columns = {"input": first}
    for method in ("single", "temporal"):
        columns[method] = read_frames(results[method], indices)[0]
    sheet = contact_sheet(columns, names)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


def rel(path: str | Path) -> str:
    """A path as the commands print it: relative to the repository where it is inside it."""
    return str(Path(path).relative_to(ROOT)) if Path(path).is_relative_to(ROOT) else str(path)


def score_footage(clip: Path, stem: str, models: dict[str, Path], work: Path, sheet: Path,
                  smoke: bool) -> tuple[dict, dict, Path]:
    """infer.py with each model on one footage clip, evaluate.py's flicker and fidelity of each result against the
    clip, and the contact sheet: (figures per model, commands per model, the sheet's path)."""
    from restoregan.data.io import list_images
    from restoregan.data.video import probe

    if smoke and clip.is_dir():  # the first frames only (a folder's frames pair by index: no max_frames)
        clip = photo_folder(work / "smoke_footage" / stem, list_images(clip)[: SMOKE["video_frames"]])
    limit = (SMOKE["video_frames"] if smoke else VIDEO_FRAMES) if clip.is_file() else None
    video = ["video.format=ffv1", f"video.max_frames={limit}"] if clip.is_file() else []
    made, figures, commands = {}, {}, {}
    for method, model in models.items():
        out = work / "footage" / method / stem
        if out.exists():
            shutil.rmtree(out)  # a stale frame left there would shift the pairing by index
        infer = ["infer.py", f"ckpt={rel(model)}", f"input={rel(clip)}", f"output={rel(out)}", "video.resume=false",
                 *video]
        run(infer)
        made[method] = find_result(out, stem)
        ev_out = work / "footage_eval" / f"{stem}_{method}"
        ev = ["evaluate.py", f"input={rel(clip)}", f"result={rel(made[method])}", f"out_dir={rel(ev_out)}",
              f"dataset={stem}", *([f"temporal.max_frames={limit}"] if limit else [])]
        run(ev)
        figures[method] = {**footage_figures(json.loads((ev_out / "metrics.json").read_text())),
                           "result": rel(made[method]), "report": rel(ev_out / "metrics.md")}
        commands[method] = ["python " + shlex.join(infer), "python " + shlex.join(ev)]
    write_sheet(sheet, clip, made, min(probe(clip).frames or 0, limit or 10**9))
    return figures, commands, sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-train", action="store_true", help="score the models of the last run")
    ap.add_argument("--minutes", type=float, default=TRAIN_MINUTES, help="wall-time budget of each training")
    ap.add_argument("--temporal-iters", type=int, default=TEMPORAL_ITERS)
    ap.add_argument("--single-iters", type=int, default=SINGLE_ITERS)
    ap.add_argument("--smoke", action="store_true", help="tiny runs: check the script end to end")
    opts = ap.parse_args()
    smoke = opts.smoke
    tag = "_smoke" if smoke else ""
    work = ROOT / "runs" / f"bench_film_video{tag}"
    models = work / "models"
    results_path = RESULTS / f"film_restore_video{tag}.json"
    sheets = work / "contact_sheets"  # frames of the shared footage: kept out of the repository
    t_iters, s_iters = (SMOKE["iters"], SMOKE["iters"]) if smoke else (opts.temporal_iters, opts.single_iters)
    common = ["data.num_workers=1", "logger=csv", "overwrite=true", *(SMOKE["train"] if smoke else [])]
    # the single-frame model trains on the temporal one's photos (its own default lacks the ImageNet sample), so
    # the comparison is of the models, not of their data
    same_photos = single_training_photos(work)
    jobs = {
        "temporal": ["train.py", "experiment=film_restore_video_quickstart", f"name=bench_film_video_temporal{tag}",
                     f"pretrain_iters={t_iters}", *common],
        "single": ["train.py", "experiment=film_restore_quickstart", f"name=bench_film_video_single{tag}",
                   f"pretrain_iters={s_iters}", f"data.train.optional_sources=[{','.join(same_photos)}]", *common],
    }
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    if opts.skip_train:
        training = previous.get("training", {})
        for method in jobs:
            if not (models / f"{method}.safetensors").exists():
                sys.exit(f"error: --skip-train, but {models / method}.safetensors is missing (run without it first)")
    else:
        training = train_both(jobs, work / "logs")
        for method, args in jobs.items():
            training[method].update(copy_export(args[2].split("=", 1)[1], models, method))
    for method in training:
        training[method]["within_budget"] = training[method].get("wall_minutes", float("inf")) <= opts.minutes
    temporal, single = (models / f"{m}.safetensors" for m in ("temporal", "single"))
    results: dict = {
        "commands": {m: "OMP_NUM_THREADS=1 python " + shlex.join(a) + "   (both at once)" for m, a in jobs.items()},
        "machine": machine(), "minutes_budget": opts.minutes, "smoke": smoke, "training": training,
        "metric": "PSNR on RGB of 8-bit frames (grey references) from each clip's mean squared error over its frames, "
                  "SSIM the mean of its frames', no border crop; pooled = mean over every clip of every set",
        "held_out": {}, "reports": {}, "footage": {}, "contact_sheets": {},
    }

    # 2. held-out clips
    reports = {}
    for name, source in held_out_sets(work, smoke).items():
        out = work / f"eval_{name}"
        cmd = ["evaluate.py", f"ckpt=[{rel(temporal)},{rel(single)}]", f"hr_dir={rel(source)}", f"out_dir={rel(out)}",
               f"dataset={name}", *([f"clip_size={SMOKE['clip_size']}"] if smoke else [])]
        run(cmd)
        reports[name] = json.loads((out / "metrics.json").read_text())["methods"]
        results["held_out"][name] = set_summary(reports[name])
        results["reports"][name] = rel(out / "metrics.md")
        results["commands"][f"eval_{name}"] = "python " + shlex.join(cmd)
    results["held_out_all"] = pooled(reports)

    # 3. real footage
    for clip in FOOTAGE:
        if not clip.exists():
            print(f"skipping footage {clip.name}: not found")
            continue
        stem = clip.stem if clip.is_file() else clip.name
        figures, commands, sheet = score_footage(clip, stem, {"single": single, "temporal": temporal}, work,
                                                 sheets / f"{stem}_contact.png", smoke)
        results["footage"][stem] = figures
        results["commands"].update({f"footage_{stem}_{m}": c for m, c in commands.items()})
        results["contact_sheets"][stem] = rel(sheet)

    results["done_when"] = done_when(results["held_out_all"], results["footage"])
    table = markdown(results)
    results["table"] = table
    RESULTS.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    print(json.dumps(results["done_when"], indent=2))
    print(f"wrote {rel(results_path)}; contact sheets in {rel(sheets)}/")


if __name__ == "__main__":
    main()
