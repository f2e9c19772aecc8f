"""Ablation of the colorize_quickstart recipe: which data and loss choices carry to photos the model never saw.

python bench/colorize_ablation.py NAME [ITERS] [key=value ...]   -> one line appended to results/colorize_ablation.jsonl

Each run trains the quickstart's generator (colorize_unet_small, random init, BatchNorm decoder) in a plain
PyTorch loop (Adam 1e-3, cosine schedule, batch 16, one thread; no EMA, no validation: about 10 minutes for
1,500 iterations here), on the scikit-image training photos plus BSD100 less its every-5th photo, then scores
it like evaluate.py (chroma rendered at 64 px on the full-resolution luminance, 8-bit output, CIEDE2000 and
colourfulness) on the held-out sets, with the predicted chroma scaled by a few gains. The loop is not the
framework's (bench/colorize_quickstart.py trains through train.py), so that one knob at a time moves at no more
than the cost of the training itself. Keys:
  short_side=64,192   photo shorter side, fixed or a [lo, hi] range drawn per item (the quickstart: 64,192)
  crop=64             crop size
  loss=lab_l1         lab_l1 | yuv_l1 | rebalanced (RebalancedChromaL1Loss in Lab; mix=0.5 by default)
  mix=0.5             rebalancing strength (1 = none)
  gamma_jitter=0      log-normal sigma of a gamma applied to the input luminance (exposure augmentation)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from restoregan.data.color import chroma, compose, luminance
from restoregan.data.colorize_dataset import resize_short_side, to_grey
from restoregan.data.datasets import holdout_split
from restoregan.data.datasets import skimage_photos
from restoregan.data.io import list_images, quantize, read_image, to_numpy, to_tensor
from restoregan.gans.colorize_unet import ColorizeUNet
from restoregan.losses.chroma import ChromaL1Loss, RebalancedChromaL1Loss
from restoregan.metrics.color import colorfulness, delta_e
from restoregan.tasks.colorize import colour_photos, is_grey, predict_chroma

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "data" / "benchmarks"
OUT = ROOT / "bench" / "results" / "colorize_ablation.jsonl"
GAINS = (0.8, 1.0, 1.25, 1.5)


def held_out_sets() -> dict[str, list[Path]]:
    """The photos bench/colorize_quickstart.py scores, chosen as evaluate.py chooses them."""
    return {"skimage_val": colour_photos("skimage:val"),
            "BSD100_held_out": colour_photos(str(BENCH / "BSD100/x4/HR"), holdout_every=5),
            "Set5": colour_photos(str(BENCH / "Set5/x4/HR")), "Set14": colour_photos(str(BENCH / "Set14/x4/HR"))}


def loss_fn(opts: dict) -> torch.nn.Module:
    name = opts.get("loss", "lab_l1")
    if name == "rebalanced":
        return RebalancedChromaL1Loss(space="lab", mix=float(opts.get("mix", 0.5)))
    return ChromaL1Loss(space={"lab_l1": "lab", "yuv_l1": "yuv"}[name])


def train(iters: int, opts: dict) -> ColorizeUNet:
    sides = [int(v) for v in opts.get("short_side", "64,192").split(",")]
    lo, hi = sides[0], sides[-1]
    crop, jitter = int(opts.get("crop", 64)), float(opts.get("gamma_jitter", 0))
    photos = skimage_photos("train") + holdout_split(list_images(BENCH / "BSD100/x4/HR"), 5, held_out=False)
    images = [resize_short_side(read_image(p), hi) for p in photos]
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = ColorizeUNet(encoder="resnet18", pretrained=False, decoder_channels=(128, 64, 48, 32, 16),
                       spectral_norm=False, batch_norm=True)
    opt = torch.optim.Adam(net.parameters(), 1e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    criterion = loss_fn(opts)
    for it in range(iters):
        crops = []
        for _ in range(16):
            img = resize_short_side(images[rng.integers(len(images))], int(rng.integers(lo, hi + 1)))
            top, left = rng.integers(img.shape[0] - crop + 1), rng.integers(img.shape[1] - crop + 1)
            c = img[top : top + crop, left : left + crop]
            crops.append(to_tensor(np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c)))
        gt = torch.stack(crops)
        lum = luminance(gt)
        target = compose(lum, chroma(gt))
        if jitter:  # the input's exposure varies; the colour to predict does not
            lum = lum.clamp(1e-4, 1) ** torch.exp(torch.randn(len(gt), 1, 1, 1) * jitter)
        loss = criterion(compose(luminance(target), net(lum)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 250 == 0:
            print(f"iteration {it}: loss {float(loss):.4f}", flush=True)
    return net.eval()


def score(net: ColorizeUNet) -> dict:
    """Per set and pooled over every photo: delta E change relative to grey (%, + = better) and colourfulness
    ratio to the originals, for each chroma gain."""
    per_set: dict[str, list[dict]] = {}  # what does not depend on the gain, computed once per photo
    for name, paths in held_out_sets().items():
        rows = []
        for path in paths:
            original = read_image(path)
            if is_grey(original):
                continue  # nothing to score colour against (as evaluate.py)
            grey = quantize(to_grey(original))
            lum = luminance(to_tensor(grey)[None])
            with torch.no_grad():
                c = predict_chroma(net, lum, 64)
            rows.append({"original": original, "lum": lum, "chroma": c, "grey": delta_e(grey, original),
                         "colour_original": colorfulness(original)})
        per_set[name] = rows
    result: dict = {}
    for gain in GAINS:
        pooled = {"grey": [], "model": [], "colour": [], "original": []}
        for name, rows in per_set.items():
            figures = {"grey": [r["grey"] for r in rows], "model": [], "colour": [],
                       "original": [r["colour_original"] for r in rows]}
            for r in rows:
                out = quantize(to_numpy(compose(r["lum"], gain * r["chroma"])[0]))
                figures["model"].append(delta_e(out, r["original"]))
                figures["colour"].append(colorfulness(out))
            result.setdefault(name, {})[str(gain)] = summary(figures)
            for k in pooled:
                pooled[k] += figures[k]
        result.setdefault("pooled", {})[str(gain)] = summary(pooled)
    return result


def summary(f: dict) -> dict:
    return {"delta_e_reduction_pct": round(100 * (1 - np.mean(f["model"]) / np.mean(f["grey"])), 1),
            "colorfulness_ratio": round(float(np.mean(f["colour"]) / np.mean(f["original"])), 2)}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    name, iters = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 and "=" not in sys.argv[2] else 1500
    opts = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
    torch.set_num_threads(1)
    start = time.time()
    net = train(iters, opts)
    record = {"name": name, "iterations": iters, "options": opts, "train_minutes": round((time.time() - start) / 60, 1),
              "scores": score(net)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
