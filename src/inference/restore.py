"""infer.py for film-restoration models: images, folders of frames and video files (PyAV).

- An image -> output/<stem>_restored.png; a folder (of photos or frames) -> the same for each image in it.
- A video file -> output/<stem>_restored.mp4 (H.264 by default), every frame at its input timestamp, written to a
  temp file and renamed when complete.

Frames are restored one by one (`restoregan.inference.tiled.upscale` at scale 1, so large scans run in tiles
with the same result as in one pass). The model is a plain image-to-image net; grey models accept the
sepia-tinted scans they were trained on.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.atomic import atomic_write
from restoregan.data.io import list_images, read_image, to_numpy, to_tensor, write_image
from restoregan.data.video import VideoWriter, is_video_file, iter_frames, probe
from restoregan.gans.checkpoint import LoadedGenerator
from restoregan.inference.tiled import upscale
from restoregan.outputs import Inputs, one_target_each, prepare_outputs


class Restorer:
    """One model, one device, tiled: (H, W, 3) in, (H, W, 3) out."""

    def __init__(self, model: LoadedGenerator, device: torch.device, tile: int | None, overlap: int, half: bool) -> None:
        self.net, self.device, self.tile, self.overlap, self.half = model.net, device, tile, overlap, half

    def __call__(self, img: np.ndarray) -> np.ndarray:
        out = upscale(self.net, to_tensor(img), 1, self.tile, self.overlap, self.device, self.half)
        return to_numpy(out.clamp(0, 1).cpu())


def infer_restore(cfg: DictConfig, model: LoadedGenerator, device: torch.device) -> list[Path]:
    rcfg = cfg.restore
    source, output = Path(cfg.input), Path(cfg.output)
    if model.scale != 1:
        raise ValueError(f"{cfg.ckpt}: a x{model.scale} model; film restoration keeps the frame size (scale 1)")
    half = device.type == "cuda" if cfg.half == "auto" else bool(cfg.half) and device.type == "cuda"
    restorer = Restorer(model, device, cfg.tile, cfg.tile_overlap, half)
    inputs = Inputs([source]).add_models([cfg.ckpt])
    if is_video_file(source):
        return [restore_video(restorer, source, output, rcfg, inputs)]
    files = list_images(source) if source.is_dir() else [source]
    targets = [output / f"{p.stem}_restored.png" for p in files]
    one_target_each(files, targets)
    prepare_outputs(inputs, targets)
    for src, dst in tqdm(list(zip(files, targets)), desc=f"restoring on {device}", unit="img"):
        write_image(dst, restorer(read_image(src)))  # each file atomic: a failed run leaves no partial image
    return targets


def restore_video(
    restorer: Restorer, source: Path, output: Path, rcfg: DictConfig, inputs: Inputs | None = None
) -> Path:
    """A video file -> output/<stem>_restored.mp4 with the input's timestamps, written atomically."""
    target = output / f"{source.stem}_restored.mp4"
    prepare_outputs(inputs or Inputs([source]), [target])
    info = probe(source)
    total = info.frames or None  # for the progress bar; some containers do not say
    if rcfg.max_frames:
        total = min(total or rcfg.max_frames, rcfg.max_frames)

    def encode(tmp: str) -> None:
        writer = VideoWriter(tmp, info.fps or 25, rcfg.codec, rcfg.crf, rcfg.pix_fmt, name=target, config="restore")
        try:
            frames = islice(iter_frames(source), rcfg.max_frames)
            for frame in tqdm(frames, total=total, desc=f"restoring {source.name}", unit="frame"):
                writer.write(restorer(frame.image), frame.pts, info.time_base)
        finally:
            writer.close()

    return atomic_write(target, encode)
