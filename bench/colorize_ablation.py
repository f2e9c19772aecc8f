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
  imagenet=0          1: also train on the ImageNet sample less its every-5th photo (issue 16; ../shared/data)
  aux=none            none | coarse | instance: an auxiliary classification head on the encoder's deepest
                      features (global average pool, linear). coarse: the ImageNet photo's WordNet branch, read
                      from its file name (COARSE_GROUPS; other photos carry no label); instance: which training
                      photo a crop came from (exemplar classification, Dosovitskiy et al. 2014: every photo is its
                      own class, so no labels are needed)
  aux_weight=0.1      weight of its cross-entropy beside the chroma loss
The ImageNet hold-out (every 5th photo of the sample) is scored in every run where the sample is present, so runs
with and without it compare on the same photos.
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
IMAGENET = ROOT.parent / "shared" / "data" / "photos" / "imagenet_sample"
# WordNet id prefixes of ImageNet class names (n01443537_goldfish.jpg): the branch of the WordNet tree a class hangs
# from, so a coarse "what is it" label comes from the data itself. n01: fish, birds, reptiles, amphibians and
# invertebrates; n02: mammals (dogs among them) and insects; n03/n04: made objects; n07: food; n09: landscapes;
# n11-n13: plants and fungi; the rest (a handful of photos) share one group.
COARSE_GROUPS = {"n01": 0, "n02": 1, "n03": 2, "n04": 2, "n07": 3, "n09": 4, "n11": 5, "n12": 5, "n13": 5}
OTHER_GROUP = 6
OUT = ROOT / "bench" / "results" / "colorize_ablation.jsonl"
GAINS = (0.8, 1.0, 1.25, 1.5)


def held_out_sets() -> dict[str, list[Path]]:
    """The photos bench/colorize_quickstart.py scores, chosen as evaluate.py chooses them."""
    sets = {"skimage_val": colour_photos("skimage:val")}
    for name, folder, every in (("BSD100_held_out", BENCH / "BSD100/x4/HR", 5), ("Set5", BENCH / "Set5/x4/HR", None),
                                ("Set14", BENCH / "Set14/x4/HR", None), ("ImageNet_held_out", IMAGENET, 5)):
        if folder.is_dir():  # ../shared/data absent: scored on what is there
            sets[name] = colour_photos(str(folder), holdout_every=every)
    return sets


def coarse_label(path: Path) -> int:
    """The WordNet branch of an ImageNet sample photo (COARSE_GROUPS), -1 for a photo without a WordNet id."""
    if not (path.name.startswith("n") and path.name[1:9].isdigit()):
        return -1
    return COARSE_GROUPS.get(path.name[:3], OTHER_GROUP)


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
    if opts.get("imagenet", "0") == "1":
        if not IMAGENET.is_dir():
            sys.exit(f"error: imagenet=1, but {IMAGENET} is not there (../shared/data/README.md)")
        photos += holdout_split(list_images(IMAGENET), 5, held_out=False)
    images = [resize_short_side(read_image(p), hi) for p in photos]
    aux, aux_weight = opts.get("aux", "none"), float(opts.get("aux_weight", 0.1))
    labels = {"none": None, "coarse": [coarse_label(Path(p)) for p in photos], "instance": list(range(len(photos)))}[aux]
    if labels is not None and max(labels) < 0:  # coarse labels come from ImageNet file names only
        sys.exit("error: aux=coarse needs labelled photos: add imagenet=1")
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = ColorizeUNet(encoder="resnet18", pretrained=False, decoder_channels=(128, 64, 48, 32, 16),
                       spectral_norm=False, batch_norm=True)
    params = list(net.parameters())
    if labels is not None:  # the head reads the deepest encoder features through a hook; it is not part of the model
        head = torch.nn.Linear(512, max(labels) + 1)
        params += list(head.parameters())
        deepest: list[torch.Tensor] = []
        hook = net.layer4.register_forward_hook(lambda _m, _i, out: deepest.append(out))
    opt = torch.optim.Adam(params, 1e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    criterion = loss_fn(opts)
    for it in range(iters):
        crops, picked = [], []
        for _ in range(16):
            picked.append(int(rng.integers(len(images))))
            img = resize_short_side(images[picked[-1]], int(rng.integers(lo, hi + 1)))
            top, left = rng.integers(img.shape[0] - crop + 1), rng.integers(img.shape[1] - crop + 1)
            c = img[top : top + crop, left : left + crop]
            crops.append(to_tensor(np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c)))
        gt = torch.stack(crops)
        lum = luminance(gt)
        target = compose(lum, chroma(gt))
        if jitter:  # the input's exposure varies; the colour to predict does not
            lum = lum.clamp(1e-4, 1) ** torch.exp(torch.randn(len(gt), 1, 1, 1) * jitter)
        loss = criterion(compose(luminance(target), net(lum)), target)
        if labels is not None:
            target_class = torch.tensor([labels[i] for i in picked])
            logits = head(deepest.pop().mean((2, 3)))
            if (target_class >= 0).any():
                loss = loss + aux_weight * torch.nn.functional.cross_entropy(logits, target_class, ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 250 == 0:
            print(f"iteration {it}: loss {float(loss):.4f}", flush=True)
    if labels is not None:
        hook.remove()
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
