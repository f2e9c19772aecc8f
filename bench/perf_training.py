"""Training speed: iterations/s of every quickstart and full experiment, the framework's overhead against a plain
PyTorch loop of the same networks and losses, peak memory, and training-side switches on and off.

python bench/perf_training.py [config ...] [--device cuda] [--bf16] [--channels-last] [--repeats N] [--out PATH]
    -> bench/results/perf/training.json (or PATH)
Budget: about 7 minutes on the reference 2-core CPU (BENCH_QUICK=1: under a minute).

How it measures. Each config is composed as `train.py experiment=NAME` would compose it, at a fixed batch and patch
size (the experiment's own on a GPU; on a CPU the quickstarts' own and batch 2 of 64 px patches for the full
experiments, whose real sizes would take minutes per step). A few batches are drawn from the config's own training
data once, so data loading is not in these figures (bench/perf_data.py measures the loader). Then:
- framework: `GANModule` under a Lightning `Trainer` built from the config, as train.py builds them (validation,
  checkpoints and the progress bar off: they are not per-step costs);
- plain: the same networks (same seed, so the same initial weights), the same loss modules and optimizers and
  the same EMA update, in a hand-written loop (zero_grad, backward, step; the discriminator frozen for the
  generator step).
Seconds per iteration of one run: its start-to-start intervals after warm-up, cut into WINDOWS consecutive windows,
the median of the windows' means; so everything between two batches counts (Lightning's hooks and logging
included) while one window slowed by a neighbour process does not. Each GAN config is measured in both phases:
generator pretraining (G only) and adversarial (D then G). For the overhead, framework and plain loop alternate
REPEATS times (framework, plain, framework, plain, ...: drift of the machine hits both alike); each repeat gives
one overhead, framework / plain - 1, and the phase reports their min, median and max and the spread (max - min,
in percentage points). The verdict is the median against 5%; the spread says whether the figure is above its noise.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import ROOT, PeakMemory, bench_device, quick, write_result  # noqa: E402

from training import machine  # noqa: E402

from restoregan.atomic import atomic_write  # noqa: E402
from restoregan.training.ema import update_ema, warmup_decay  # noqa: E402
from restoregan.training.precision import resolve_precision  # noqa: E402
from restoregan.training.run import build_module, has_gan  # noqa: E402

QUICKSTARTS = ["sr_quickstart", "colorize_quickstart", "interp_quickstart", "film_restore_quickstart"]
FULL = ["srgan_x4", "esrgan_x4", "realesrgan_x4", "colorize", "interp", "film_restore"]
CPU_FULL_SIZE = {"batch_size": 2, "crop_size": 64}
REPEATS = 5  # framework/plain pairs per quickstart phase: about 90 s more than 3 pairs on the 2-core CPU
WINDOWS = 3  # timed windows per run, after warm-up


def compose_config(name: str, device: torch.device, extra: list[str] = ()) -> DictConfig:
    overrides = [f"experiment={name}", "pretrained_backbones=false", "logger=csv", "data.num_workers=0",
                 f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}", *extra]
    if device.type == "cpu" and name in FULL:
        overrides += [f"data.{k}={v}" for k, v in CPU_FULL_SIZE.items()]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    # `fast` (the film quickstarts) as train.py resolves it, so both loops run the precision a training would
    cfg.trainer.precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    return cfg


def draw_batches(cfg: DictConfig, n: int) -> list[dict]:
    """n training batches from the config's own data (seeded), kept in memory."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data)
    loader = iter(dm.train_dataloader())
    return [next(loader) for _ in range(n)]


class _Replay(torch.utils.data.Dataset):
    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        return self.batches[i]


def _loader(batches: list[dict]) -> DataLoader:
    return DataLoader(_Replay(batches), batch_size=None, shuffle=False, num_workers=0)


class _Clock(pl.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args: object) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args: object) -> None:
        self.starts.append(time.perf_counter())


def _per_iteration(starts: list[float], warmup: int, windows: int = WINDOWS) -> float:
    """Seconds per iteration from batch start times: the intervals after `warmup` cut into `windows` consecutive
    windows of equal length (a remainder at the end is dropped), the median of the windows' means. A window's mean
    keeps every per-step cost (Lightning's logging every 10th step too); the median drops a window that a
    neighbour process slowed (a mean of all intervals swung the framework/plain ratio by +-7% between runs)."""
    intervals = [b - a for a, b in zip(starts[warmup:], starts[warmup + 1:])]
    windows = max(1, min(windows, len(intervals)))
    size = len(intervals) // windows
    return statistics.median(statistics.fmean(intervals[i * size:(i + 1) * size]) for i in range(windows))


def alternate(framework: Callable[[], float], plain: Callable[[], float], repeats: int
              ) -> tuple[list[float], list[float]]:
    """(framework times, plain times) of `repeats` pairs run framework, plain, framework, plain, ... (ABAB), so a
    slow spell of the machine falls on both sides of neighbouring pairs rather than on one side."""
    fw: list[float] = []
    plain_times: list[float] = []
    for _ in range(repeats):
        fw.append(framework())
        plain_times.append(plain())
    return fw, plain_times


def overhead_stats(fw: list[float], plain: list[float]) -> dict:
    """Per-repeat overhead (framework / plain - 1 of the same pair, in %) and its min, median, max and spread (max -
    min, in percentage points)."""
    per = [100 * (f / p - 1) for f, p in zip(fw, plain, strict=True)]
    return {"repeats": len(per), "per_repeat_percent": [round(x, 2) for x in per],
            "min_percent": round(min(per), 1), "median_percent": round(statistics.median(per), 1),
            "max_percent": round(max(per), 1), "spread_points": round(max(per) - min(per), 1)}


def phase_overrides(cfg: DictConfig, phase: str, iters: int) -> None:
    """Train only `phase` for `iters` iterations. The schedulers keep the arguments of the config's own schedule
    (colorize_quickstart's cosine has T_max: ${pretrain_iters}, which would otherwise become 0 in the GAN phase)."""
    with open_dict(cfg):
        for key in ("scheduler_g", "scheduler_d"):
            if cfg.model.get(key) is not None:
                cfg.model[key] = OmegaConf.to_container(cfg.model[key], resolve=True)
        if phase == "g_pretrain":
            cfg.pretrain_iters, cfg.d_pretrain_iters, cfg.gan_iters = iters, 0, 0
        else:
            cfg.pretrain_iters, cfg.d_pretrain_iters, cfg.gan_iters = 0, 0, iters


def framework_run(cfg: DictConfig, batches: list[dict], warmup: int, device: torch.device, tmp: Path,
                  memory: bool = False, module: pl.LightningModule | None = None
                  ) -> tuple[float, float | None, pl.LightningModule, list[torch.optim.Optimizer]]:
    """(seconds per iteration, peak MiB or None, the trained module, its optimizers) of train.py's module under
    Lightning; `module`: train this one further instead of building a fresh one. `memory`: measure peak memory
    instead of time; on a CPU that needs a sampling thread, whose wake-ups every 2 ms slowed the steps by 10%."""
    if module is None:
        pl.seed_everything(cfg.seed, verbose=False)
        module = build_module(cfg)
    clock = _Clock()
    steps = len(batches) if cfg.gan_iters == 0 or not has_gan(cfg) else 2 * len(batches)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision, max_steps=steps,
        limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        logger=instantiate(cfg.logger, save_dir=str(tmp)), log_every_n_steps=cfg.trainer.log_every_n_steps,
        num_sanity_val_steps=0, callbacks=[clock], default_root_dir=str(tmp),
    )
    if not memory:
        trainer.fit(module, train_dataloaders=_loader(batches))
        return _per_iteration(clock.starts, warmup), None, module, trainer.optimizers
    with PeakMemory(device) as peak:
        trainer.fit(module, train_dataloaders=_loader(batches))
    return float("nan"), peak.mib, module, trainer.optimizers


class PlainStep:
    """One training iteration of a built GANModule's parts without Lightning, written the obvious way: the
    generator on the pretrain loss, or (gan=True) a discriminator step then a generator step on content +
    adversarial loss with the discriminator frozen (Lightning's toggle_optimizer); then the EMA update. The plain
    loop here and bench/perf_data.py's step time both use it. `optimizers`: reuse these (a framework run's)."""

    def __init__(self, module: pl.LightningModule, precision: str = "32-true",
                 optimizers: list[torch.optim.Optimizer] | None = None) -> None:
        self.m = m = module
        has_d = m.net_d is not None and m.optimizer_d is not None
        if optimizers:
            self.opt_g, self.opt_d = optimizers[0], (optimizers[1] if len(optimizers) > 1 else None)
        else:
            self.opt_g = m.optimizer_g(m.net_g.parameters())
            self.opt_d = m.optimizer_d(m.net_d.parameters()) if has_d else None
        self.amp = precision in ("bf16-mixed", "16-mixed")
        self.dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16

    def __call__(self, batch: dict, gan: bool, iteration: int) -> None:
        m, task = self.m, self.m.task
        device = next(m.net_g.parameters()).device
        with torch.autocast(device.type, dtype=self.dtype, enabled=self.amp):
            target = task.target(batch)
            output = task.generate(m.net_g, batch)
            if gan:
                real, fake = task.discriminator_pair(batch, output)
                l_d, _ = m.adversarial_loss.d_loss(m.net_d, real, fake.detach())
                self.opt_d.zero_grad(set_to_none=True)
                l_d.backward()
                self.opt_d.step()
                m.net_d.requires_grad_(False)
                l_g = m.content_loss(output, target)[0] + m.hparams.adversarial_weight * m.adversarial_loss.g_loss(
                    m.net_d, real, fake)
            else:
                l_g = m.pretrain_loss(output, target)[0]
        self.opt_g.zero_grad(set_to_none=True)
        l_g.backward()
        self.opt_g.step()
        if gan:
            m.net_d.requires_grad_(True)  # as found: a later framework run trains the same module
        if m.net_g_ema is not None:
            update_ema(m.net_g_ema, m.net_g, warmup_decay(m.hparams.ema_decay, iteration))


def plain_run(cfg: DictConfig, batches: list[dict], warmup: int, device: torch.device,
              module: pl.LightningModule | None = None,
              optimizers: list[torch.optim.Optimizer] | None = None) -> tuple[float, torch.nn.Module]:
    """(seconds per iteration, the trained generator) of the same networks, losses, optimizers and EMA in a
    hand-written loop: a fresh build of the config, or `module`'s own networks and `optimizers` (the same tensors
    in the same memory as a framework run, so the comparison is not coloured by where the allocator put them)."""
    if module is None:
        pl.seed_everything(cfg.seed, verbose=False)
        module = build_module(cfg).to(device)
    module.net_g.train()
    gan = cfg.gan_iters > 0 and module.has_gan
    if gan:
        module.net_d.train()
    step = PlainStep(module, cfg.trainer.precision, optimizers)
    starts = []
    for i, cpu_batch in enumerate(batches):
        starts.append(time.perf_counter())
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in cpu_batch.items()}
        step(batch, gan, module._iter + i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    starts.append(time.perf_counter())
    return _per_iteration(starts, warmup), module.net_g


def measure(name: str, device: torch.device, tmp: Path, with_plain: bool, extra: list[str] = (),
            only_phase: str | None = None, repeats: int = REPEATS) -> dict:
    n, warmup = (4, 1) if quick() else ((16, 2) if name in QUICKSTARTS else (4, 1))
    base = compose_config(name, device, list(extra))
    batches = draw_batches(base, n)
    phases = [only_phase] if only_phase else (["g_pretrain", "gan"] if has_gan(base) else ["g_pretrain"])
    out: dict = {"batch_size": base.data.batch_size, "crop_size": base.data.crop_size,
                 "precision": base.trainer.precision, "phases": {}}
    for phase in phases:
        cfg = copy.deepcopy(base)
        phase_overrides(cfg, phase, 10**9)  # the module stays in this phase however often it is trained on
        peak = None if only_phase else framework_run(cfg, batches[:3], 0, device, tmp, memory=True)[1]
        # One module: the framework trains it, then the plain loop trains its networks with its optimizers, in
        # alternating repeats. Fresh builds per run made the same code 10% faster or slower from run to run.
        state: dict = {"module": None, "optimizers": None}

        def run_framework() -> float:
            t, _, state["module"], state["optimizers"] = framework_run(cfg, batches, warmup, device, tmp,
                                                                       module=state["module"])
            return t

        def run_plain() -> float:
            return plain_run(cfg, batches, warmup, device, state["module"], state["optimizers"])[0]

        if with_plain:
            fw, plain = alternate(run_framework, run_plain, 1 if quick() else repeats)
        else:
            fw, plain = [run_framework()], []
        row = {"framework_seconds_per_iteration": round(min(fw), 4),
               "framework_iterations_per_s": round(1 / min(fw), 3), "peak_mib": peak}
        if with_plain:
            stats = overhead_stats(fw, plain)
            row["plain_seconds_per_iteration"] = round(min(plain), 4)
            row["framework_overhead_percent"] = stats["median_percent"]  # the verdict's figure
            row["overhead"] = stats
        out["phases"][phase] = row
    # The loader must keep up with the fastest phase: that is the step time bench/perf_data.py compares with.
    out["seconds_per_step"] = min(r["framework_seconds_per_iteration"] for r in out["phases"].values())
    return out


SWITCHES = {  # name: (off overrides, on overrides), measured on sr_quickstart's generator pretraining
    "fused_adam": ([], ["+model.optimizer_g.fused=true", "+model.optimizer_d.fused=true"]),
    "foreach_adam_off": ([], ["+model.optimizer_g.foreach=false", "+model.optimizer_d.foreach=false"]),
    "bf16_autocast": ([], ["trainer.precision=bf16-mixed"]),
    "channels_last": ([], ["model.channels_last=true"]),
    "compile": ([], ["model.compile=true"]),
}
# Compiling for training takes about two minutes of the 2-core CPU's time: only with BENCH_COMPILE=1 or on a GPU.
SLOW_SWITCHES = {"compile"}


def child(name: str, extra: list[str], repeats: int = REPEATS) -> dict:
    """One config in its own process: on a CPU the process's peak resident memory is then this config's."""
    args = [sys.executable, __file__, "--one", name, f"--repeats={repeats}", *extra]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1][len("RESULT "):])


def run_one(name: str, extra: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for logger in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    device = bench_device()
    tmp = ROOT / "runs" / "_bench_perf_training"
    repeats = REPEATS
    if extra[:1] and extra[0].startswith("--repeats="):
        repeats, extra = int(extra[0].split("=", 1)[1]), extra[1:]
    switch = extra[:1] == ["--switch"]  # a switch run: generator pretraining only, no memory or plain loop
    extra = extra[1:] if switch else extra
    result = measure(name, device, tmp, with_plain=name in QUICKSTARTS and not switch, extra=extra,
                     only_phase="g_pretrain" if switch else None, repeats=repeats)
    if device.type == "cpu":
        result["process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(result), flush=True)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="experiments (default: every quickstart and full experiment, "
                                                    "then the switches on sr_quickstart)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: BENCH_DEVICE, else CUDA when present)")
    parser.add_argument("--bf16", action="store_true", help="train with trainer.precision=bf16-mixed")
    parser.add_argument("--channels-last", action="store_true", help="train with model.channels_last=true")
    parser.add_argument("--repeats", type=_positive, default=REPEATS,
                        help=f"framework/plain pairs per quickstart phase for the overhead (default {REPEATS})")
    parser.add_argument("--out", type=Path, help="the JSON to write (default: bench/results/perf/training.json)")
    return parser


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        return run_one(sys.argv[2], sys.argv[3:])
    args = arg_parser().parse_args()
    if args.device:
        os.environ["BENCH_DEVICE"] = args.device  # the children read it through bench_device()
    extra = (["trainer.precision=bf16-mixed"] if args.bf16 else []) + (
        ["model.channels_last=true"] if args.channels_last else [])
    names = args.configs or (QUICKSTARTS + FULL)
    configs, switches = {}, {}
    for name in names:
        configs[name] = c = child(name, extra, args.repeats)
        if "error" in c:
            print(f"  {name}: FAILED {c['error']}", flush=True)
            continue
        for phase, row in c["phases"].items():
            ov = row.get("overhead")
            print(f"  {name:24s} {phase:10s} {row['framework_iterations_per_s']:7.2f} it/s"
                  + ("" if ov is None else f"  overhead vs plain loop median {ov['median_percent']:+.1f}% (min "
                                           f"{ov['min_percent']:+.1f}, max {ov['max_percent']:+.1f})")
                  + f"  peak {row['peak_mib']} MiB", flush=True)
    if not args.configs:
        baseline = child("sr_quickstart", ["--switch"])
        for sw, (_, on) in SWITCHES.items():
            if sw in SLOW_SWITCHES and bench_device().type == "cpu" and os.environ.get("BENCH_COMPILE") != "1":
                switches[sw] = {"speedup": None, "error": "skipped on CPU (about 2 min of compiling); BENCH_COMPILE=1"}
                continue
            b = child("sr_quickstart", ["--switch", *on])
            if "error" in baseline or "error" in b:  # e.g. a switch this torch build does not support here
                switches[sw] = {"speedup": None, "error": baseline.get("error") or b.get("error")}
            else:
                ta = baseline["phases"]["g_pretrain"]["framework_seconds_per_iteration"]
                tb = b["phases"]["g_pretrain"]["framework_seconds_per_iteration"]
                switches[sw] = {"off_seconds_per_iteration": ta, "on_seconds_per_iteration": tb,
                                "speedup": round(ta / tb, 3)}
            print(f"  switch {sw}: {switches[sw]}", flush=True)
    payload = {
        "what": "training iterations/s (one iteration = one batch: G step, or D then G step in the GAN phase)",
        "cpu_full_experiment_size": CPU_FULL_SIZE if bench_device().type == "cpu" else None,
        "peak_memory": "per phase: cuda max_memory_allocated, or on CPU the RSS rise during the run (a lower bound: "
                       "memory freed by the previous phase is reused); process_peak_rss_mib: the whole process",
        "overhead": f"quickstarts: {1 if quick() else args.repeats} alternating framework/plain pairs per phase, {WINDOWS} timed windows "
                    "per run; per-pair overhead min / median / max and spread (max - min, percentage points)",
        "configs": configs, "switches_on_sr_quickstart": switches, "overrides": extra,
    }
    if args.out is None:
        write_result("training", payload)
    else:  # write_result's fields, at another path (bench/gpu.sh: bench/results/gpu/)
        payload = {"bench": "training", "machine": machine(), "device": str(bench_device()),
                   "torch_threads": torch.get_num_threads(), "quick": quick(), **payload}
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, default=str) + "\n"))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
