"""What infer.py does (the script is its command line): apply a loaded model to images one by one, or to a
video or frame sequence through the film pipeline with one stage; `infer(cfg)` takes conf/infer.yaml composed."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan import cli
from restoregan.data.datasets import image_size
from restoregan.data.io import (IMAGE_SUFFIXES, list_images, read_image_full, set_max_pixels, to_numpy, to_tensor,
                                write_image_as)
from restoregan.data.video import is_video_file
from restoregan.gans.card import format_card
from restoregan.gans.onnx_model import prepare_for_infer
from restoregan.inference.images import ImageOptions
from restoregan.inference.tiled import check_tiling, resolve_device
from restoregan.models import Model, check_chosen, chosen_task, load_model, tiling_note, with_options
from restoregan.outputs import Inputs, one_target_each, prepare_outputs
from restoregan.pipeline.output import named_output
from restoregan.pipeline.run import make_stage, plan_job, prepare, run_options, run_pipeline, run_stages
from restoregan.tasks.base import RunOptions


def output_paths(
    inputs: list[Path], output: Path, suffix: str, source: Path | None = None, ckpt: str | Path | None = None,
    extensions: list[str] | None = None,
) -> list[Path]:
    """`<output>/<stem><suffix><extension>` for each input (extensions: .png each unless given); refuses to
    overwrite an input (the images, the `source` folder they came from, the model files of `ckpt`) or to write
    one file twice; removes the temps a killed run left beside the targets."""
    extensions = extensions or [".png"] * len(inputs)
    targets = [output / f"{p.stem}{suffix}{ext}" for p, ext in zip(inputs, extensions)]
    one_target_each(inputs, targets)
    # the folder (or file) the images came from covers them all: its files are matched by inode
    prepare_outputs(Inputs([source] if source is not None else inputs).add_models([ckpt]), targets)
    return targets


# Settings checked up front (restoregan.cli.check_ranges): key -> (least value, or None for auto/true/false; what
# it takes). A task's own options are checked by the task class when the model's task is built; the image keys
# (outscale, quality, image_format, ...) by restoregan.inference.images.ImageOptions.from_cfg.
OPTIONS = {
    "video.max_frames": (1, "a number of frames >= 1"), "video.segment_frames": (1, "a number of frames >= 1"),
    "video.batch": (1, "a number of frames >= 1"), "video.contact_frames": (0, "a number of rows >= 0"),
    "video.contact_side": (1, "a number of pixels >= 1"), "video.input_fps": (1e-9, "a frame rate above 0"),
    "video.crf": (0, "a quality >= 0 (x264: 0-51, lower is better)"),
    "half": (None, "auto, true or false"), "bf16": (None, "auto, true or false"),
    "channels_last": (None, "auto, true or false"),
}


# Image keys (restoregan.inference.images) with their defaults: set for a video, they are named as unused.
IMAGE_ONLY = {"outscale": None, "image_format": "auto", "suffix": None, "keep_grey": False, "image_depth": "auto"}


def load(cfg: DictConfig, device: torch.device) -> Model:
    """The model of cfg.ckpt with `task.<option>`s laid over its task, once `task=` is checked to be its own."""
    target, options = chosen_task(cfg.get("task"))
    model = load_model(cfg.ckpt, device)
    check_chosen(model, target)
    card = format_card(model.meta.get("card"))
    if card:
        print(card)
    model = with_options(model, options)
    switches = {k: cfg.get(k) is True for k in ("channels_last", "compile", "bf16")}  # asked for, not auto
    for note in prepare_for_infer(model, cfg.tile, switches):  # ONNX models (restoregan.gans.onnx_model)
        print(note)
    return prepare(model, cfg)


def is_stream(source: Path, model: Model) -> bool:
    """A video file, or a folder of images its task treats as one frame sequence."""
    if source.is_dir():
        return model.task.sequence(list_images(source))
    return is_video_file(source)


def infer_video(cfg: DictConfig, model: Model, source: Path, run: RunOptions) -> list[Path]:
    """The film pipeline's video path with one stage, the model's task: sound, timestamps, resume, side outputs."""
    name = model.task.name
    stem = source.name if source.is_dir() else source.stem
    unused = [k for k, default in IMAGE_ONLY.items() if cfg.get(k, default) != default]
    if unused:
        print(f"note: {', '.join(unused)} apply to image inputs; a video or frame sequence is written by the "
              "video: block (video.format, video.depth, ...)")
    target = named_output(Path(cfg.output), f"{stem}{model.task.output_suffix}", cfg.video.format, source.is_dir())
    job = plan_job(source, target, cfg.video, [Path(cfg.ckpt)])
    stage = make_stage(name, model, run)
    written = run_stages(cfg, job, [stage], {name: chosen_task(cfg.get("task"))[1] or {}}, {name: Path(cfg.ckpt)}, run)
    for path in written[1:]:
        print(f"also wrote {path}")
    return [job.output]


def infer_images(cfg: DictConfig, model: Model, source: Path, run: RunOptions) -> list[Path]:
    """Each image on its own: `task.apply_batch` on a batch of one, then the image options (outscale, alpha,
    format, depth, grey: restoregan.inference.images), written as it is done (atomically)."""
    output = Path(cfg.output)
    options = ImageOptions.from_cfg(cfg)
    inputs = list_images(source) if source.is_dir() else [source]
    targets = output_paths(inputs, output, options.stem_suffix(model.task), source, cfg.ckpt,
                           [options.target_suffix(p) for p in inputs])
    # the headers are read again only when tiling may apply (the note measures the model's receptive field)
    largest = max((max(image_size(p)) for p in inputs), default=0) if run.tile is not None else 0
    note = tiling_note(model, run.tile, run.tile_overlap, largest)
    if note:
        print(note)
    output.mkdir(parents=True, exist_ok=True)
    dropped = []  # inputs whose alpha a JPEG output cannot hold
    for src, dst in tqdm(list(zip(inputs, targets)), desc=f"{model.task.name} on {run.device}", unit="img"):
        image = read_image_full(src)
        options.check_size(src, *image.rgb.shape[:2])
        with torch.inference_mode():
            out = model.task.apply_batch(model, to_tensor(image.rgb)[None], run)
        write_image_as(dst, **options.finish(image, to_numpy(out[0].clamp(0, 1).cpu()), model.task, dst))
        if options.alpha and image.alpha is not None and dst.suffix.lower() in (".jpg", ".jpeg"):
            dropped.append(src)
    if dropped:
        print(f"note: JPEG has no alpha: the alpha channel of {len(dropped)} image(s) ({dropped[0].name}, ...) was "
              "dropped; image_format=png or webp keeps it")
    return targets


def infer(cfg: DictConfig) -> list[Path]:
    set_max_pixels(cfg.max_pixels)  # checked from each image's header before it is decoded
    check_tiling(cfg.tile, cfg.tile_overlap)
    cli.check_ranges(cfg, OPTIONS)
    ImageOptions.from_cfg(cfg)  # the image keys, refused in one line before any model loads
    if cfg.pipeline is not None:  # pipeline=film: stages with their own checkpoints (restoregan.pipeline)
        if cfg.get("task") is not None:
            raise ValueError("task=...: options of one model; with pipeline=film set each stage's own "
                             "(stages.<stage>.<option>=...)")
        return run_pipeline(cfg)
    for key in ("ckpt", "input", "output"):
        if cfg[key] is None:
            raise ValueError(f"{key}=... is required (python infer.py ckpt=PATH input=FILE_OR_DIR output=DIR)")
    source = Path(cfg.input)
    if not source.exists():
        raise ValueError(f"{source}: input not found")
    device = resolve_device(cfg.device)
    run = run_options(cfg, device)
    model = load(cfg, device)
    if is_stream(source, model):
        return infer_video(cfg, model, source, run)
    return infer_images(cfg, model, source, run)


def wrote_line(targets: list[Path], output: Path) -> str:
    """The last line: the one output (an image, a video, a frame folder), else how many files, named by kind."""
    if len(targets) == 1:
        return f"wrote {targets[0]}"
    noun = "images" if all(p.suffix.lower() in IMAGE_SUFFIXES for p in targets) else "files"
    return f"wrote {len(targets)} {noun} in {output}"
