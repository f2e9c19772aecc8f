"""What the quickstart benches share: run a script as a user would, time a training, describe the machine."""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> None:
    """`python ARGS` in the repository, printed first, failing loudly."""
    print("$ python " + " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def timed_training(train_args: list[str], results_path: Path, skip: bool) -> tuple[float | None, float | None]:
    """(wall minutes, CPU minutes) of `python train.py ...`; with `skip`, the figures of the last results file.
    CPU time is reported too: on a shared 2-core machine wall time overstates the cost."""
    if skip:
        previous = json.loads(results_path.read_text()) if results_path.exists() else {}
        return previous.get("train_wall_minutes"), previous.get("train_cpu_minutes")
    start = time.time()
    run(train_args)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((time.time() - start) / 60, 2), round((child.ru_utime + child.ru_stime) / 60, 2)


@functools.cache
def conv_speed() -> float:
    """This machine's conv3x3 GFLOP/s on (up to) 2 threads, measured once per process: the shared machine's speed
    varies from day to day (366 GFLOP/s one day, 204 the next), so a training time reads only beside it."""
    from perf_flops import matmul_peak  # bench/ is the script's directory, on sys.path

    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        return matmul_peak(torch.device("cpu"), torch.float32)["conv3x3_gflop_per_s"]
    finally:
        torch.set_num_threads(threads)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": [round(x, 2) for x in os.getloadavg()], "conv3x3_gflop_per_s_2_threads": conv_speed(),
            "platform": platform.platform(), "torch": torch.__version__}
