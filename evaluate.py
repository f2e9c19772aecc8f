"""Benchmark super-resolution models against bicubic:
python evaluate.py [ckpt=PATH | ckpt='[A,B]'] hr_dir=DIR [lr_dir=DIR] scale=4 out_dir=DIR [lpips=true]
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from restoregan.evaluation.run import evaluate
from restoregan.pretrained import MissingWeightsError


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except (ValueError, MissingWeightsError) as err:
        sys.exit(f"error: {err}")
    out = Path(cfg.out_dir)
    print((out / "metrics.md").read_text())
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'}, {out / 'comparison.png'}")


if __name__ == "__main__":
    main()
