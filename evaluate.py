"""Benchmark models against their task's baselines (conf/evaluate.yaml):
python evaluate.py [ckpt=PATH | ckpt='[A,B]'] DATA out_dir=DIR [task=<name> task.<option>=...]
  DATA is what the models' task reads (each model file says its task): hr_dir=DIR [lr_dir=DIR] for sr,
  hr_dir=DIR for colorize and restore, input=VIDEO_OR_FRAME_DIR for interp; without ckpt, task=<name> gives a
  baseline-only report (python evaluate.py task=sr task.scale=4 hr_dir=DIR out_dir=DIR)
python evaluate.py input=ORIGINAL result=PROCESSED out_dir=DIR   (temporal consistency of a processed video)
Installed, the same command is restoregan-evaluate; both call restoregan.entry.
"""

from __future__ import annotations

from restoregan.entry import evaluate_app as main, evaluate_main

__all__ = ["main", "evaluate_main"]  # `main`: the @hydra.main function tests call

if __name__ == "__main__":
    evaluate_main()
