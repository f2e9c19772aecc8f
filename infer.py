"""Apply a trained generator to images, frame folders or video; what it does follows the checkpoint's task:
python infer.py ckpt=PATH input=FILE_OR_DIR output=DIR [tile=512] [tile_overlap=32] [device=auto] [half=auto]
                [channels_last=false] [compile=false] [bf16=false]

  sr        upscale images (ours or any ESRGAN-family .pth spandrel reads) -> output/<stem>_x<scale>.png
  colorize  colour images, frame folders or video (options: the `colorize:` block of conf/infer.yaml)
  interp    raise the frame rate of a video or frame folder (options: the `interp:` block)
  restore   remove film damage from images, frame folders or video (options: the `restore:` block)
python infer.py pipeline=film input=reel.mp4 output=restored.mp4: restore, colorize, upscale, interpolate a film
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan import cli
from restoregan.data.io import list_images, read_image, set_max_pixels, to_numpy, to_tensor, write_image
from restoregan.evaluation.run import load_models
from restoregan.inference.tiled import check_tiling, prepare_for_inference, resolve_device, upscale
from restoregan.outputs import Inputs, one_target_each, prepare_outputs


def output_paths(
    inputs: list[Path], output: Path, scale: int, source: Path | None = None, ckpt: str | Path | None = None
) -> list[Path]:
    """`<output>/<stem>_x<scale>.png` for each input; refuses to overwrite an input (the images, the `source`
    folder they came from, the model files of `ckpt`) or to write one file twice; removes the temps a killed
    run left beside the targets."""
    targets = [output / f"{p.stem}_x{scale}.png" for p in inputs]
    one_target_each(inputs, targets)
    # the folder (or file) the images came from covers them all: its files are matched by inode
    prepare_outputs(Inputs([source] if source is not None else inputs).add_models([ckpt]), targets)
    return targets


# Settings checked up front (restoregan.cli.check_ranges):
# key -> (least value, or None for auto/true/false; what it takes)
OPTIONS = {
    "restore.max_frames": (1, "a number of frames >= 1"), "colorize.max_frames": (1, "a number of frames >= 1"),
    "colorize.render_size": (1, "a number of pixels >= 1"), "colorize.contact_frames": (1, "a number of rows >= 1"),
    "colorize.contact_side": (1, "a number of pixels >= 1"), "interp.input_fps": (1e-9, "a frame rate above 0"),
    "pipeline.max_frames": (1, "a number of frames >= 1"), "pipeline.segment_frames": (1, "a number of frames >= 1"),
    "pipeline.batch": (1, "a number of frames >= 1"), "pipeline.contact_frames": (0, "a number of rows >= 0"),
    "pipeline.contact_side": (1, "a number of pixels >= 1"), "pipeline.input_fps": (1e-9, "a frame rate above 0"),
    "stages.colorize.render_size": (1, "a number of pixels >= 1"),
    "stages.colorize.warmup": (0, "a number of frames >= 0"),
    **{f"{block}.crf": (0, "a quality >= 0 (x264: 0-51, lower is better)")
       for block in ("restore", "colorize", "interp", "pipeline")},
    "half": (None, "auto, true or false"), "colorize.sequence": (None, "auto, true or false"),
}


def infer(cfg: DictConfig) -> list[Path]:
    set_max_pixels(cfg.max_pixels)  # checked from each image's header before it is decoded
    check_tiling(cfg.tile, cfg.tile_overlap)
    cli.check_ranges(cfg, OPTIONS)
    if cfg.pipeline is not None:  # pipeline=film: stages with their own checkpoints (restoregan.pipeline)
        from restoregan.pipeline.run import run_pipeline

        return run_pipeline(cfg)
    for key in ("ckpt", "input", "output"):
        if cfg[key] is None:
            raise ValueError(f"{key}=... is required (python infer.py ckpt=PATH input=FILE_OR_DIR output=DIR)")
    source, output = Path(cfg.input), Path(cfg.output)
    if not source.exists():
        raise ValueError(f"{source}: input not found")
    device = resolve_device(cfg.device)
    half = device.type == "cuda" if cfg.half == "auto" else bool(cfg.half) and device.type == "cuda"
    model = next(iter(load_models([Path(cfg.ckpt)], device).values()))
    prepare_for_inference(model.net, bool(cfg.channels_last), bool(cfg.compile), bool(cfg.bf16))
    if model.task == "colorize":
        from restoregan.inference.colorize import infer_colorize

        return infer_colorize(cfg, model, device)
    if model.task == "interp":
        from restoregan.inference.interp import infer_interp

        return infer_interp(cfg, model, device)
    if model.task == "restore":
        from restoregan.inference.restore import infer_restore

        return infer_restore(cfg, model, device)
    if model.task != "sr":
        raise ValueError(f"{cfg.ckpt}: a {model.task!r} model, which infer.py does not know")
    inputs = list_images(source) if source.is_dir() else [source]
    targets = output_paths(inputs, output, model.scale, source, cfg.ckpt)
    output.mkdir(parents=True, exist_ok=True)
    for src, dst in tqdm(list(zip(inputs, targets)), desc=f"x{model.scale} on {device}", unit="img"):
        lr = to_tensor(read_image(src))
        sr = upscale(model.net, lr, model.scale, cfg.tile, cfg.tile_overlap, device, half)
        write_image(dst, to_numpy(sr.clamp(0, 1).cpu()))
    return targets


@hydra.main(config_path="conf", config_name="infer", version_base="1.3")
@cli.task
def main(cfg: DictConfig) -> None:
    targets = infer(cfg)
    where = targets[0] if len(targets) == 1 else f"{len(targets)} images in {Path(cfg.output)}"
    print(f"wrote {where}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    cli.run(main)
