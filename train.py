"""Train a restoration GAN: python train.py experiment=sr_quickstart [overrides].

Resume an interrupted run with the same overrides plus `ckpt_path=last`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from restoregan.training.run import train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
