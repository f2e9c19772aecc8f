"""Bench: train `colorize_quickstart` on its default data (CPU, the scikit-image training photos), then score it on
colour photos it never saw and colour the real film footage.

python bench/colorize_quickstart.py [extra train.py overrides]   -> bench/results/colorize_quickstart.json
python bench/colorize_quickstart.py --skip-train                  (re-score the last bench run)

The bar (issue 3): at most 20 minutes of training on this machine; on colour photos it never saw, mean CIEDE2000
delta E at least 10% below the grey input's and colourfulness at least half the originals'. The quickstart trains
on the scikit-image training photos plus four fifths of BSD100 (`holdout_every: 5`). Held out, each reported alone
and all pooled for the verdict: the scikit-image validation photos and the other fifth of BSD100 (photos of the
kind it trained on), Set5 and Set14 HR (portraits and objects under warmer light: another kind). The footage in
../shared/data/footage is coloured by infer.py as PNG frames (lossless, so the luminance check is exact), with and
without temporal stabilisation (`task.stabilize=false`); the flicker of each is measured by evaluate.py's temporal
report against the footage (warping error relative to the input's), and the luminance of every written frame is
compared with the input's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from restoregan.data.color import luminance
from restoregan.data.io import read_image, to_tensor
from restoregan.data.video import iter_frames
from training import machine, run, timed_training

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
RUN = ROOT / "runs" / "bench_colorize_quickstart"
BENCH = SHARED / "benchmarks"
# name -> (photos, extra evaluate.py arguments)
HELD_OUT = {
    "skimage_val": ("skimage:val", []),
    "BSD100_held_out": (BENCH / "BSD100/x4/HR", ["task=colorize", "task.holdout_every=5"]),  # the fifth never seen
    "Set5": (BENCH / "Set5/x4/HR", []),
    "Set14": (BENCH / "Set14/x4/HR", []),
}
GROUPS = {"same_kind": ["skimage_val", "BSD100_held_out"], "other_kind": ["Set5", "Set14"]}
FOOTAGE = ["old_film_frames_001", "old_film_frames_003", "a_bomb_blast_effects_part.mp4"]


def pooled(per_image: dict[str, dict], names: list[str]) -> dict:
    """Mean delta E over every photo of the named sets (each photo counts once) and the colourfulness ratio
    of the model's mean to the originals' mean."""
    names = [n for n in names if n in per_image]
    grey = [im["delta_e"] for n in names for im in per_image[n]["grey"]]
    model = [im["delta_e"] for n in names for im in per_image[n]["model"]]
    colour = [im["colorfulness"] for n in names for im in per_image[n]["model"]]
    original = [per_image[n]["original_colorfulness"] for n in names for _ in per_image[n]["model"]]
    return {
        "sets": names,
        "images": len(grey),
        "delta_e": {"grey": float(np.mean(grey)), "model": float(np.mean(model))},
        "delta_e_reduction_pct": round(100 * float(1 - np.mean(model) / np.mean(grey)), 2),
        "colorfulness_ratio": round(float(np.mean(colour) / np.mean(original)), 3),
    }


def colour_footage(model: Path, source: Path) -> dict:
    """infer.py on the footage with and without stabilisation (PNG frames), each scored by evaluate.py's temporal
    report against the footage; the largest luminance change of a stabilised frame, in 8-bit levels."""
    stem, figures = source.stem, {}
    for label, extra in (("stabilised", []), ("raw", ["task=colorize", "task.stabilize=false"])):
        out = RUN / "footage" / label
        start = time.time()
        run(["infer.py", f"ckpt={model}", f"input={source}", f"output={out}", "video.format=png", *extra])
        seconds = round(time.time() - start, 1)
        frames = out / f"{stem}_color"
        run(["evaluate.py", f"input={source}", f"result={frames}", f"out_dir={out / f'{stem}_temporal'}"])
        report = json.loads((out / f"{stem}_temporal" / "metrics.json").read_text())
        figures[label] = {"seconds": seconds, "warp_error": report["methods"]["result"]["warp_error"],
                          "relative_to_input": report["relative"], "scene_cuts": report["scene_cuts"]}
        if label == "stabilised":
            figures["frames"] = len(list(frames.glob("*.png")))
            figures["input_warp_error"] = report["methods"]["input"]["warp_error"]
            figures["contact_sheet"] = str((out / f"{stem}_color_contact.png").relative_to(ROOT))
            figures["max_luminance_diff_8bit"] = max_luminance_diff(source, frames)
    return figures


def max_luminance_diff(source: Path, frames: Path) -> float:
    """The largest difference, in 8-bit levels, between the luminance of a written frame and its input's."""
    written = sorted(frames.glob("*.png"))
    worst = 0.0
    for frame, path in zip(iter_frames(source), written):
        a, b = to_tensor(frame.image)[None], to_tensor(read_image(path))[None]
        worst = max(worst, float((luminance(a) - luminance(b)).abs().max()) * 255)
    return round(worst, 3)


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
    per_image: dict[str, dict] = {}  # set -> per-image figures, for pooling
    for name, (source, extra_eval) in HELD_OUT.items():
        if isinstance(source, Path) and not source.exists():
            print(f"skipping {name}: {source} not found")
            continue
        out = RUN / f"eval_{name}"
        run(["evaluate.py", f"ckpt={model}", f"hr_dir={source}", f"out_dir={out}", f"dataset={name}", *extra_eval])
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
        per_image[name] = {"grey": grey["images"], "model": ours["images"],
                           "original_colorfulness": report["colorfulness_original"]}
    if per_image:
        results["held_out_all"] = pooled(per_image, list(per_image))
        results["held_out_all"]["passes"] = {
            "delta_e_10pct_below_grey": results["held_out_all"]["delta_e_reduction_pct"] >= 10,
            "colorfulness_half_of_originals": results["held_out_all"]["colorfulness_ratio"] >= 0.5,
            "train_within_20_min": train_minutes is not None and train_minutes <= 20,
        }
        results["held_out_groups"] = {group: pooled(per_image, names) for group, names in GROUPS.items()
                                      if any(n in per_image for n in names)}
    for item in FOOTAGE:
        source = SHARED / "footage" / item
        if not source.exists():
            print(f"skipping {item}: {source} not found")
            continue
        results["footage"][Path(item).stem] = colour_footage(model, source)
    OUT.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
