"""Apply a model to images, frame folders or video; what it does is its task's (the model file carries it):
python infer.py ckpt=PATH input=FILE_OR_DIR output=DIR [task=<name> task.<option>=...] [tile=512]
                [tile_overlap=32] [device=auto] [half=auto] [channels_last=auto] [compile=false] [bf16=auto] [exact=false]

  an image, or a folder of images   -> output/<stem><suffix>.png each (`task.output_suffix`: _x4, _restored, ...;
                                       outscale, alpha, image_format, suffix, keep_grey, image_depth: conf/infer.yaml)
  a video, or a folder of frames    -> output/<stem><suffix>.mp4 (or output/<name><suffix>/ PNG frames), the
    (when the task calls it a          film pipeline with one stage: sound, timestamps, resume, side-by-side and
     frame sequence)                   contact sheet as for pipeline=film (the `video:` block of conf/infer.yaml)
python infer.py pipeline=film input=reel.mp4 output=restored.mp4: restore, colorize, upscale, interpolate a film
Installed, the same command is restoregan-infer; both call restoregan.entry.
"""

from __future__ import annotations

from restoregan.entry import infer_app as main, infer_main
from restoregan.inference.run import infer, output_paths, wrote_line  # tests use them from here

__all__ = ["main", "infer_main", "infer", "output_paths", "wrote_line"]  # `main`: the @hydra.main function tests call

if __name__ == "__main__":
    infer_main()
