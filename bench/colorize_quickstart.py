"""Bench: train `colorize_quickstart` on its default data (CPU, the scikit-image training photos), then score it on
colour photos it never saw and colour the real film footage.

python bench/colorize_quickstart.py [extra train.py overrides]   -> bench/results/colorize_quickstart.json
python bench/colorize_quickstart.py --skip-train                  (re-score the last bench run)

The bar (issue 3): at most 20 minutes of training on this machine; on held-out colour photos (the held-out
scikit-image photos, Set5 and Set14 HR from ../shared/data/benchmarks; the quickstart trains on the scikit-image
training photos plus BSD100) mean CIEDE2000 delta E at least 10%
below the grey input's and colourfulness at least half the originals'. The footage in ../shared/data/footage
is coloured by infer.py (contact sheets, flicker before/after stabilisation, luminance check).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from training import machine, run, timed_training

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
RUN = ROOT / "runs" / "bench_colorize_quickstart"
# BSD100 is training data of the quickstart (when present); these photos are not
HELD_OUT = {"skimage_val": "skimage:val", "Set5": SHARED / "benchmarks/Set5/x4/HR", "Set14": SHARED / "benchmarks/Set14/x4/HR"}
FOOTAGE = ["old_film_frames_001", "old_film_frames_003", "a_bomb_blast_effects_part.mp4"]


def main() -> None:
    skip_train = "--skip-train" in sys.argv
    extra = [a for a in sys.argv[1:] if a != "--skip-train"]
    train_args = ["train.py", "experiment=colorize_quickstart", "name=bench_colorize_quickstart", "overwrite=true",
                  "logger=csv", *extra]
    results_path = OUT / "colorize_quickstart.json"
    train_minutes, train_cpu_minutes = timed_training(train_args, results_path, skip_train)
    model = RUN / "export" / "generator.safetensors"
    results: dict = {
        "command": "python " + " ".join(train_args),
        "train_wall_minutes": train_minutes,
        "train_cpu_minutes": train_cpu_minutes,
        "machine": machine(),
        "held_out": {},
        "footage": {},
    }
    delta_e = {"grey": [], "model": []}
    colourful = {"original": [], "model": []}
    for name, source in HELD_OUT.items():
        if isinstance(source, Path) and not source.exists():
            print(f"skipping {name}: {source} not found")
            continue
        out = RUN / f"eval_{name}"
        run(["evaluate.py", f"ckpt={model}", f"hr_dir={source}", f"out_dir={out}", f"dataset={name}"])
        report = json.loads((out / "metrics.json").read_text())
        ours, grey = report["methods"]["generator"], report["methods"]["grey"]
        results["held_out"][name] = {
            "images": len(ours["images"]),
            "delta_e": {"grey": grey["delta_e"], "model": ours["delta_e"]},
            "delta_e_reduction_pct": round(100 * (1 - ours["delta_e"] / grey["delta_e"]), 2),
            "colorfulness": {"original": report["colorfulness_original"], "model": ours["colorfulness"]},
            "colorfulness_ratio": round(ours["colorfulness"] / report["colorfulness_original"], 3),
            "psnr_rgb": {"grey": grey["psnr"], "model": ours["psnr"]},
            "ssim_rgb": {"grey": grey["ssim"], "model": ours["ssim"]},
            "fid": ours["fid"],
            "fid_note": report["fid_note"],
        }
        delta_e["grey"] += [im["delta_e"] for im in grey["images"]]
        delta_e["model"] += [im["delta_e"] for im in ours["images"]]
        colourful["model"] += [im["colorfulness"] for im in ours["images"]]
    # pooled over all held-out photos: each set's mean weighted by its image count
    for name, r in results["held_out"].items():
        colourful["original"] += [r["colorfulness"]["original"]] * r["images"]
    if delta_e["grey"]:
        reduction = 1 - np.mean(delta_e["model"]) / np.mean(delta_e["grey"])
        ratio = np.mean(colourful["model"]) / np.mean(colourful["original"])
        results["held_out_all"] = {
            "images": len(delta_e["grey"]),
            "delta_e": {"grey": float(np.mean(delta_e["grey"])), "model": float(np.mean(delta_e["model"]))},
            "delta_e_reduction_pct": round(100 * float(reduction), 2),
            "colorfulness_ratio": round(float(ratio), 3),
            "passes": {"delta_e_10pct_below_grey": bool(reduction >= 0.10), "colorfulness_half_of_originals": bool(ratio >= 0.5),
                       "train_within_20_min": train_minutes is not None and train_minutes <= 20},
        }
    for item in FOOTAGE:
        source = SHARED / "footage" / item
        if not source.exists():
            print(f"skipping {item}: {source} not found")
            continue
        out = RUN / "footage"
        start = time.time()
        run(["infer.py", f"ckpt={model}", f"input={source}", f"output={out}"])
        stem = Path(item).stem
        report = json.loads((out / f"{stem}_stability.json").read_text())
        results["footage"][stem] = {
            "frames": report["frames"],
            "seconds": round(time.time() - start, 1),
            "flicker_before": report["flicker_before"],
            "flicker_after": report["flicker_after"],
            "scene_cuts": report["scene_cuts"],
            "max_luminance_diff_8bit": report["max_luminance_diff_8bit"],
            "contact_sheet": str((out / f"{stem}_contact.png").relative_to(ROOT)),
        }
    OUT.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
