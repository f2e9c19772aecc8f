"""Train a restoration GAN: python train.py experiment=sr_quickstart [overrides] (installed: restoregan-train ...).

The task is the config group `task` (default sr, `task.scale=4`); each experiment selects its own
(`override /task: colorize`), or choose one with task=<name> (conf/task/<name>.yaml).

Resume an interrupted run with the same overrides plus `ckpt_path=last`. A sweep: python train.py -m seed=1,2
(each job in runs/<name>/multirun/<n>/). Errors end in one line on stderr (RESTOREGAN_TRACEBACK=1 shows the
traceback). The work is restoregan.entry's (the console script's too); this file keeps `python train.py` working.
"""

from __future__ import annotations

from restoregan.entry import train_app as main, train_main

__all__ = ["main", "train_main"]  # `main`: the @hydra.main function tests call

if __name__ == "__main__":
    train_main()
