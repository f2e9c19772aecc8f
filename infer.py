"""Apply a model to images, frame folders or video; what it does is its task's (the model file carries it):
python infer.py ckpt=PATH input=FILE_OR_DIR output=DIR [task=<name> task.<option>=...] [tile=512]
                [tile_overlap=32] [device=auto] [half=auto] [channels_last=false] [compile=false] [bf16=false]

  an image, or a folder of images   -> output/<stem><suffix>.png each (`task.output_suffix`: _x4, _restored, ...)
  a video, or a folder of frames    -> output/<stem><suffix>.mp4 (or output/<name><suffix>/ PNG frames), the
    (when the task calls it a          film pipeline with one stage: sound, timestamps, resume, side-by-side and
     frame sequence)                   contact sheet as for pipeline=film (the `video:` block of conf/infer.yaml)
python infer.py pipeline=film input=reel.mp4 output=restored.mp4: restore, colorize, upscale, interpolate a film
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from restoregan import cli
from restoregan.inference.run import infer, output_paths, wrote_line  # noqa: F401 - tests use them from here


@hydra.main(config_path="conf", config_name="infer", version_base="1.3")
@cli.task
def main(cfg: DictConfig) -> None:
    print(wrote_line(infer(cfg), Path(cfg.output)))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    cli.run(main)
