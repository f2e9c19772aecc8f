"""Super-resolution benchmark: bicubic and each model on an HR folder, literature-style PSNR-Y/SSIM-Y + LPIPS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from restoregan.data.datasets import mod_crop
from restoregan.data.imresize import imresize
from restoregan.data.io import ImageReadError, inspect_image, list_images, quantize, read_image, to_numpy, to_tensor
from restoregan.evaluation.report import (
    crop_grid,
    detail_box,
    markdown_table,
    write_report,
)
from restoregan.inference.tiled import upscale
from restoregan.metrics.image import psnr_y, ssim_y
from restoregan.pretrained import MissingWeightsError

COLUMNS = [("psnr_y", "PSNR-Y (dB)", 2), ("ssim_y", "SSIM-Y", 4), ("lpips", "LPIPS", 4)]


@dataclass
class Options:
    """How to run the models and what to draw; the dataset and models are separate arguments."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    tile: int | None = None
    tile_overlap: int = 32
    lpips: bool = True
    lpips_net: str = "alex"
    grid_images: int = 5
    grid_crop: int = 96  # HR pixels per grid cell side


def dataset_name(hr_dir: Path) -> str:
    """`.../Set5/x4/HR` -> `Set5`; any other folder -> its own name."""
    parts = hr_dir.resolve().parts
    if len(parts) >= 3 and parts[-1].upper() == "HR" and parts[-2].lower().startswith("x"):
        return parts[-3]
    return parts[-1]


def single_channel(path: Path) -> bool:
    """Whether the file itself is greyscale (read_image hands it over as RGB)."""
    with Image.open(path) as im:
        return im.mode == "LA" or len(im.getbands()) == 1


def pair_images(hr_dir: Path, lr_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """(HR, LR) pairs: by stem when both folders use the same stems, else by sorted order."""
    if not hr_dir.is_dir():
        raise ValueError(f"{hr_dir}: HR folder not found")
    hrs = list_images(hr_dir)
    if lr_dir is None:
        return [(hr, None) for hr in hrs]
    if not lr_dir.is_dir():
        raise ValueError(f"{lr_dir}: LR folder not found")
    lrs = list_images(lr_dir)
    if len(lrs) != len(hrs):
        raise ValueError(f"{lr_dir}: {len(lrs)} LR images but {hr_dir} holds {len(hrs)} HR images")
    by_stem = {p.stem: p for p in lrs}
    if set(by_stem) == {p.stem for p in hrs}:
        return [(hr, by_stem[hr.stem]) for hr in hrs]
    return list(zip(sorted(hrs), sorted(lrs)))


# The smallest side each LPIPS trunk's pooling stages accept (lpips 0.1.4; it scores whole images).
LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}


def min_side(ssim_side: int, ssim_why: str, lpips_metric: torch.nn.Module | None, lpips_net: str) -> tuple[int, str]:
    """(smallest image side the metrics can score, which metric sets it)."""
    needs = [(ssim_side, ssim_why)]
    if lpips_metric is not None:
        needs.append((LPIPS_MIN_SIDE.get(lpips_net, 32), f"LPIPS ({lpips_net}) (lpips=false lifts it)"))
    return max(needs)


def refuse_small(paths: list[Path], least: int, why: str, multiple: int = 1) -> None:
    """Refuse, from the headers and before any model runs, an image too small to score, in one line naming it.
    Refused rather than skipped: a report whose means quietly cover fewer images could not be compared with
    another run's or a published figure, and the fix (leave the image out) is the user's to make."""
    least = -(-least // multiple) * multiple  # the size a file must have, its crop to the scale included
    for path in paths:
        info = inspect_image(path)
        h, w = info.height - info.height % multiple, info.width - info.width % multiple
        if min(h, w) < least:
            cropped = f" (cropped to a multiple of the scale {multiple})" if multiple > 1 else ""
            raise ImageReadError(f"{path}: {w}x{h} image{cropped} is too small to score: {why} needs at least "
                                 f"{least}x{least}; leave it out of the folder")


def load_lpips(opts: Options) -> tuple[torch.nn.Module | None, str | None]:
    """The LPIPS metric, or None and the reason (disabled, or backbone weights unavailable offline)."""
    if not opts.lpips:
        return None, "disabled (lpips=false)"
    from restoregan.metrics.lpips import LPIPS  # imports lpips only when asked for

    try:
        return LPIPS(net=opts.lpips_net).to(opts.device), None
    except MissingWeightsError as err:
        return None, str(err)


def evaluate_sr(
    hr_dir: Path,
    out_dir: Path,
    scale: int,
    models: dict[str, torch.nn.Module],
    lr_dir: Path | None = None,
    opts: Options | None = None,
    dataset: str | None = None,
) -> dict:
    """Score bicubic and `models` (name -> x`scale` generator on opts.device); write metrics.json,
    metrics.md and comparison.png to `out_dir`; return the metrics.json content."""
    opts = opts or Options()
    hr_dir, out_dir = Path(hr_dir), Path(out_dir)
    lr_dir = Path(lr_dir) if lr_dir is not None else None
    pairs = pair_images(hr_dir, lr_dir)
    lpips_metric, lpips_note = load_lpips(opts)
    ssim_why = f"SSIM-Y's 11x11 window inside the {scale}-pixel border crop"
    refuse_small([hr for hr, _ in pairs], *min_side(11 + 2 * scale, ssim_why, lpips_metric, opts.lpips_net), scale)
    names = ["bicubic", *models]
    per_image: dict[str, list[dict]] = {name: [] for name in names}
    grid_rows = []

    for hr_path, lr_path in tqdm(pairs, desc=f"evaluating x{scale}", unit="img"):
        hr = mod_crop(read_image(hr_path), scale)
        if lr_path is None:
            # what a MATLAB-made LR PNG holds: antialiased bicubic, then 8 bits
            lr = quantize(imresize(hr, scale=1 / scale))
        else:
            lr = read_image(lr_path)
            if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
                raise ValueError(
                    f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} times {scale} does not match HR "
                    f"{hr_path} of size {hr.shape[1]}x{hr.shape[0]} (after cropping to a multiple of {scale})"
                )
        outputs = {"bicubic": quantize(imresize(lr, scale=scale))}
        lr_t = to_tensor(lr)[None]
        for name, net in models.items():
            sr = upscale(net, lr_t, scale, opts.tile, opts.tile_overlap, opts.device)
            outputs[name] = quantize(to_numpy(sr[0].cpu()))
        grey = single_channel(hr_path)  # literature: grey images scored on 0-255 grey levels, not 16-235 Y
        for name, sr in outputs.items():
            if sr.shape != hr.shape:
                raise ValueError(f"{hr_path}: {name} produced {sr.shape[:2]} for an HR image of {hr.shape[:2]}")
            scores = score(sr, hr, scale, grey, lpips_metric, opts.device)
            per_image[name].append({"image": hr_path.name, **scores})
        if len(grid_rows) < opts.grid_images:
            top, left, side = detail_box(hr, opts.grid_crop)
            crop = lambda a: a[top : top + side, left : left + side]  # noqa: E731
            row = [(crop(hr), ["HR", hr_path.name])]
            row += [(crop(outputs[n]), [n, f"{per_image[n][-1]['psnr_y']:.2f} dB"]) for n in names]
            grid_rows.append(row)

    report = {
        "dataset": dataset or dataset_name(hr_dir),
        "hr_dir": str(hr_dir),
        "lr_dir": None if lr_dir is None else str(lr_dir),
        "lr_source": "matlab_bicubic" if lr_dir is None else "provided",
        "scale": scale,
        "crop_border": scale,
        "lpips_note": lpips_note,
        "methods": {name: _summary(per_image[name]) for name in names},
    }
    write_report(out_dir, report, markdown_table(report, COLUMNS), crop_grid(grid_rows), [hr_dir, lr_dir])
    return report


def score(
    sr: np.ndarray, hr: np.ndarray, scale: int, grey: bool, lpips_metric: torch.nn.Module | None, device: torch.device
) -> dict[str, float | None]:
    """PSNR-Y and SSIM-Y with `scale` border pixels cropped; LPIPS on the whole image (no crop, as BasicSR's
    calculate_lpips), None when unavailable."""
    lp = None
    if lpips_metric is not None:
        lp = float(lpips_metric(to_tensor(sr)[None].to(device), to_tensor(hr)[None].to(device))[0])
    return {"psnr_y": psnr_y(sr, hr, scale, grey), "ssim_y": ssim_y(sr, hr, scale, grey), "lpips": lp}


def _summary(images: list[dict]) -> dict:
    mean = lambda key: None if images[0][key] is None else float(np.mean([im[key] for im in images]))  # noqa: E731
    return {"psnr_y": mean("psnr_y"), "ssim_y": mean("ssim_y"), "lpips": mean("lpips"), "images": images}
