"""Train a restoration GAN: python train.py experiment=sr_quickstart [overrides].

The task is the config group `task` (default sr, `task.scale=4`); each experiment selects its own
(`override /task: colorize`), or choose one with task=<name> (conf/task/<name>.yaml).

Resume an interrupted run with the same overrides plus `ckpt_path=last`. Errors end in one line on stderr
(RESTOREGAN_TRACEBACK=1 shows the traceback).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from restoregan import cli
from restoregan.training.run import train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
@cli.task
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    cli.run(main)
