"""What the performance benches (bench/perf_*.py, run by `make bench` through bench/perf.py) share: the device,
timing with warm-up and synchronisation, peak memory of a block, and one JSON result per bench."""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "perf"
sys.path.insert(0, str(ROOT / "bench"))

from training import machine  # noqa: E402

from restoregan.atomic import atomic_write  # noqa: E402


def bench_device() -> torch.device:
    """BENCH_DEVICE=cpu|cuda|cuda:N, else CUDA when present."""
    name = os.environ.get("BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def quick() -> bool:
    """BENCH_QUICK=1: fewest repeats (the tests run the benches this way; figures are then only indicative)."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 3,
              min_seconds: float = 0.0) -> dict:
    """Median seconds per call of `fn` after `warmup` calls; at least `repeats` timed calls and, if given, enough
    to last `min_seconds`. Median: robust to a neighbour process stealing a core for one call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < (1 if quick() else repeats) or (not quick() and time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "repeats": len(times), "min_seconds": min(times)}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory of a block, in MiB: on CUDA torch's max_memory_allocated (tensors only); on CPU the peak
    resident set size above the block's start, sampled every 2 ms by a thread (/proc; ru_maxrss cannot be reset,
    so it cannot tell one block from the next)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib: float | None = None
        self.kind = "cuda_max_memory_allocated" if device.type == "cuda" else "cpu_rss_above_start"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = self._peak = _rss_bytes()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, _rss_bytes())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes())
        self.mib = round((peak - self._base) / 2**20, 1)


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block (None: unchanged)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def write_result(name: str, payload: dict) -> Path:
    """bench/results/perf/<name>.json (atomically), with the machine described; printed too."""
    payload = {"bench": name, "machine": machine(), "device": str(bench_device()),
               "torch_threads": torch.get_num_threads(), "quick": quick(), **payload}
    text = json.dumps(payload, indent=2, default=str)
    path = atomic_write(RESULTS / f"{name}.json", lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def export_untrained(experiment: str, overrides: list[str], base: Path) -> Path:
    """An untrained, seeded generator of `experiment`'s architecture (with `overrides`), exported as train.py would
    to `base`.{safetensors,yaml}; returns the .yaml. The speed benches time such stand-ins: speed does not depend on
    the weights."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from restoregan.gans.checkpoint import save_export

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", "pretrained_backbones=false", *overrides])
    torch.manual_seed(0)
    net = instantiate(cfg.generator)
    task = instantiate(cfg.task, _convert_="all")
    save_export(base, net, OmegaConf.to_container(cfg.generator, resolve=True), {"task": task.config(),
                                                                                "scale": task.scale})
    return base.with_suffix(".yaml")
