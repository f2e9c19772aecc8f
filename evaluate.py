"""Benchmark models against their task's baselines (conf/evaluate.yaml):
python evaluate.py [ckpt=PATH | ckpt='[A,B]'] DATA out_dir=DIR [task=<name> task.<option>=...]
  DATA is what the models' task reads (each model file says its task): hr_dir=DIR [lr_dir=DIR] for sr,
  hr_dir=DIR for colorize and restore, input=VIDEO_OR_FRAME_DIR for interp; without ckpt, task=<name> gives a
  baseline-only report (python evaluate.py task=sr task.scale=4 hr_dir=DIR out_dir=DIR)
python evaluate.py input=ORIGINAL result=PROCESSED out_dir=DIR   (temporal consistency of a processed video)
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from restoregan import cli
from restoregan.evaluation.run import evaluate


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@cli.task
def main(cfg: DictConfig) -> None:
    evaluate(cfg)
    out = Path(cfg.out_dir)
    print((out / "metrics.md").read_text())
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'}, {out / 'comparison.png'}")


if __name__ == "__main__":
    cli.run(main)
