"""infer.py for colorization models: images, folders of frames and video files (PyAV).

- An image, or a folder of unrelated images -> output/<stem>_color.png.
- A frame sequence (a video file, or a folder of same-size frames: `colorize.sequence`) -> coloured frames
  (output/<name>_color/ for folders, output/<stem>_color.mp4 for videos), a contact sheet
  output/<name>_contact.png (input | colour for a few frames) and output/<name>_stability.json: the flicker
  figure before/after temporal stabilisation and the largest luminance change in 8-bit levels.

Colour inputs are accepted: only their luminance is used. Chroma is rendered at `render_size` (shorter
side, DeOldify's render factor x 16) and upsampled onto the full-resolution luminance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.atomic import Staged
from restoregan.data.colorize_dataset import to_grey
from restoregan.data.color import CHROMA_SCALE, compose, luminance
from restoregan.data.io import list_images, quantize, read_image, to_numpy, to_tensor, write_image
from restoregan.data.video import VideoWriter, is_video_file, iter_frames, probe
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.inference.temporal import ChromaStabilizer, FlickerMeter, Motion
from restoregan.outputs import Inputs, prepare_outputs
from restoregan.training.grid import grid_image
from restoregan.training.task_colorize import predict_chroma


def model_space(model: LoadedGenerator) -> str:
    return str(model.meta.get("color_space", "yuv"))


def model_render_size(configured: int | None, model: LoadedGenerator) -> int | None:
    """The configured render size, else the one the model was trained for (export meta), else full size."""
    return configured if configured is not None else model.meta.get("render_size")


def is_sequence(files: list[Path], mode: str | bool) -> bool:
    """`sequence: auto` treats a folder as frames when it holds 2+ images that all share one size."""
    if mode != "auto":
        return bool(mode)
    from restoregan.data.datasets import image_size

    return len(files) >= 2 and len({image_size(p) for p in files}) == 1


class Colorizer:
    """One model, one device: luminance in, chroma out."""

    def __init__(self, model: LoadedGenerator, device: torch.device, render_size: int | None) -> None:
        self.net, self.device, self.space = model.net, device, model_space(model)
        self.render_size = model_render_size(render_size, model)

    def luminance(self, rgb: np.ndarray) -> torch.Tensor:
        return luminance(to_tensor(rgb)[None].to(self.device), self.space)  # (1, 1, H, W)

    @torch.no_grad()
    def chroma(self, lum: torch.Tensor) -> torch.Tensor:
        return predict_chroma(self.net, lum, self.render_size)  # (1, 2, H, W), scaled

    def rgb(self, lum: torch.Tensor, chroma_n: torch.Tensor) -> np.ndarray:
        return quantize(to_numpy(compose(lum, chroma_n, self.space)[0].cpu()))


def infer_colorize(cfg: DictConfig, model: LoadedGenerator, device: torch.device) -> list[Path]:
    ccfg = cfg.colorize
    source, output = Path(cfg.input), Path(cfg.output)
    colorizer = Colorizer(model, device, ccfg.render_size)
    inputs = Inputs([source]).add_models([cfg.ckpt])
    if is_video_file(source):
        return colorize_video(colorizer, source, output, ccfg, inputs)
    files = list_images(source) if source.is_dir() else [source]
    if source.is_dir() and is_sequence(files, ccfg.sequence):
        files = files[: ccfg.max_frames] if ccfg.max_frames else files
        frame_dir = output / f"{source.name}_color"
        prepare_outputs(inputs, side_files(output, source.name), folders=[frame_dir])
        # the frames, contact sheet and report appear together: the frames fill a temp folder that replaces
        # frame_dir (no frame of an earlier, longer run stays behind) when the others are written too
        with Staged() as staged:
            frames_tmp = staged.temp_dir(frame_dir)

            def save(i: int, rgb: np.ndarray) -> None:
                write_image(frames_tmp / f"{files[i].stem}.png", rgb)

            frames = (read_image(p) for p in files)
            report = colorize_sequence(colorizer, frames, len(files), source.name, output, ccfg, save, staged)
        return [*(frame_dir / f"{p.stem}.png" for p in files), *report]
    targets = [output / f"{p.stem}_color.png" for p in files]
    prepare_outputs(inputs, targets)
    for src, dst in tqdm(list(zip(files, targets)), desc=f"colorizing on {device}", unit="img"):
        lum = colorizer.luminance(read_image(src))
        write_image(dst, colorizer.rgb(lum, colorizer.chroma(lum)))  # each file atomic
    return targets


def side_files(output: Path, name: str) -> list[Path]:
    """The contact sheet and stability report of a frame sequence."""
    return [output / f"{name}_contact.png", output / f"{name}_stability.json"]


def colorize_video(
    colorizer: Colorizer, source: Path, output: Path, ccfg: DictConfig, inputs: Inputs | None = None
) -> list[Path]:
    """A video file -> output/<stem>_color.mp4 (H.264, every frame at its input timestamp), plus the contact
    sheet and stability report; the three are written aside and appear together when all are complete."""
    target = output / f"{source.stem}_color.mp4"
    prepare_outputs(inputs or Inputs([source]), [target, *side_files(output, source.stem)])
    info = probe(source)
    # the contact sheet spreads its rows over the clip, so the count is needed up front
    count = info.frames or sum(1 for _ in iter_frames(source))
    count = min(count, ccfg.max_frames) if ccfg.max_frames else count
    pts: list[int | None] = []
    report: list[Path] = []

    def images() -> Iterator[np.ndarray]:
        for frame in islice(iter_frames(source), count):
            pts.append(frame.pts)
            yield frame.image

    with Staged() as staged:

        def encode(tmp: str) -> None:
            writer = VideoWriter(tmp, info.fps or 25, "libx264", ccfg.crf, ccfg.pix_fmt, name=target, config="colorize")
            try:
                emit = lambda i, rgb: writer.write(rgb, pts[i], info.time_base)  # noqa: E731
                report.extend(colorize_sequence(colorizer, images(), count, source.stem, output, ccfg, emit, staged))
            finally:
                writer.close()

        staged.write(target, encode)
    return [target, *report]


def colorize_sequence(
    colorizer: Colorizer,
    frames: Iterator[np.ndarray],
    count: int,
    name: str,
    output: Path,
    ccfg: DictConfig,
    emit: Callable[[int, np.ndarray], None],
    staged: Staged,
) -> list[Path]:
    """Colour frames one by one, stabilising chroma over time; hand each to `emit(index, rgb)`; write the
    contact sheet and the stability report (returned) into `staged`, beside the frames' own output."""
    stabilizer = ChromaStabilizer(ccfg.stabilize_strength) if ccfg.stabilize else None
    before, after = FlickerMeter(), FlickerMeter()
    sheet_at = set(np.linspace(0, count - 1, min(ccfg.contact_frames, count)).round().astype(int).tolist())
    sheet_rows, max_lum_diff, cuts = [], 0.0, []
    # flicker in 8-bit chroma levels (U, V) or Lab units (a, b)
    level = 255.0 * CHROMA_SCALE["yuv"] if colorizer.space == "yuv" else CHROMA_SCALE["lab"]
    prev_lum = None
    for i, rgb in enumerate(tqdm(frames, total=count, desc=f"colorizing {name}", unit="frame")):
        lum = colorizer.luminance(rgb)
        lum_np = lum[0, 0].cpu().numpy()
        motion = Motion(prev_lum, lum_np, ccfg.scene_cut) if prev_lum is not None else None
        if motion is not None and motion.cut:
            cuts.append(i)
        raw = colorizer.chroma(lum)[0].cpu().numpy()
        stable = stabilizer(raw, motion) if stabilizer is not None else raw
        out = colorizer.rgb(lum, torch.from_numpy(stable)[None].to(lum.device))
        before.add(raw * level, motion)
        after.add(stable * level, motion)
        prev_lum = lum_np
        out_lum = colorizer.luminance(out)[0, 0].cpu().numpy()
        max_lum_diff = max(max_lum_diff, float(np.abs(out_lum - lum_np).max()) * 255.0)
        emit(i, out)
        if i in sheet_at:
            sheet_rows.append([(f"frame {i} input", to_tensor(to_grey(rgb))), ("colour", to_tensor(out))])
    contact, stability = side_files(output, name)
    sheet = grid_image(sheet_rows, max_side=ccfg.contact_side)
    staged.write(contact, lambda tmp: sheet.save(tmp, format="PNG"))
    report = {
        "frames": count,
        "color_space": colorizer.space,
        "render_size": colorizer.render_size,
        "stabilize": bool(ccfg.stabilize),
        "stabilize_strength": ccfg.stabilize_strength if ccfg.stabilize else None,
        "scene_cuts": cuts,
        "flicker_before": before.summary(),
        "flicker_after": after.summary(),
        "max_luminance_diff_8bit": round(max_lum_diff, 3),
        "flicker_definition": FlickerMeter.DEFINITION,
    }
    staged.write_bytes(stability, (json.dumps(report, indent=2) + "\n").encode())
    # a single frame (or only cuts) has no pair to measure: its figures are None
    b, a = ({k: "n/a" if v is None else f"{v:.3f}" for k, v in report[key].items()}
            for key in ("flicker_before", "flicker_after"))
    print(
        f"{name}: flicker (mean chroma change between frames, 8-bit levels) raw {b['raw']} -> {a['raw']}, "
        f"motion-compensated {b['compensated']} -> {a['compensated']}; scene cuts at {cuts or 'none'}; "
        f"max luminance change {max_lum_diff:.2f} levels"
    )
    return [contact, stability]

