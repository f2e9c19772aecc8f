"""Data performance (issue 6): degradation patches/s per DataLoader worker for every pipeline the configs use,
against a plain per-image numpy/OpenCV reference (as a ratio, same run), and each quickstart's training loader
against its training step (alone, and feeding a training loop in the same process as train.py does).

    python bench/perf_data.py                 # -> bench/results/perf/data.json
    BENCH_QUICK=1 python bench/perf_data.py   # fewest repeats: 25-35 s (figures only indicative)

Budget (normal run): at most 3 minutes on the 2-core reference CPU; measured 1.7-2.0 minutes with OMP_NUM_THREADS=1
while neighbours kept the load average at 4-6. "Per worker" = one process, one thread
(torch and OpenCV), which is what a DataLoader worker should be; OpenCV's own default thread count is measured
too. Patch sizes are the experiments' crop sizes (stated in the JSON). Peak memory: PeakMemory (on CPU the
main process's RSS above the block's start); DataLoader workers are separate processes, so their peak RSS
(VmHWM, which counts pages shared with the parent by fork) is read from /proc and reported beside it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from scipy import special

import perf_common as pc
from restoregan.data import degradations as D
from restoregan.data.colorize_dataset import GreyInput
from restoregan.data.datasets import skimage_photos
from restoregan.data.film_dataset import damaged_pair
from restoregan.data.imresize import imresize
from restoregan.data.io import quantize, read_image

ROOT = Path(__file__).resolve().parents[1]
QUICKSTARTS = ("sr_quickstart", "colorize_quickstart", "interp_quickstart", "film_restore_quickstart")
WORKERS = (0, 1, 2)
# Keeping up = the training loop waits for data less than this fraction of its time. Even a loader that is far
# ahead costs a few ms per batch to hand over (unpickling from the workers' shared memory), which is 2-4% of the
# shortest quickstart steps (0.13 s); a loader that falls behind shows as a wait near (loader - step) / loader.
WAIT_LIMIT = 0.1
CPU = torch.device("cpu")
_CV2_DEFAULT_THREADS = cv2.getNumThreads()  # what a DataLoader worker runs OpenCV with


def compose_train(experiment: str, overrides: tuple[str, ...] = ()) -> DictConfig:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}", *overrides])


class single_thread:
    """torch and OpenCV on one thread inside the block (what one DataLoader worker should use)."""

    def __enter__(self) -> None:
        self._torch, self._cv2 = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._torch)
        cv2.setNumThreads(self._cv2)


# ----------------------------------------------------------------------------------------- the reference
# Plain per-image numpy/OpenCV, written the obvious way: the same kinds of operations with the same parameter
# ranges as Real-ESRGAN's paper configs (and our RealESRGANDegradation defaults), no precomputation or reuse.
_ODD = lambda lo, hi: list(range(lo | 1, hi + 1, 2))  # noqa: E731
_REF_MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def ref_sinc(k: int, cutoff: float) -> np.ndarray:
    """Circular lowpass (a jinc) on a k x k grid."""
    ax = np.arange(k) - k // 2
    r = np.sqrt(ax[None, :] ** 2 + ax[:, None] ** 2) + 1e-12
    kern = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    kern[k // 2, k // 2] = cutoff**2 / (4 * np.pi)
    return kern / kern.sum()


def ref_kernel(rng: np.random.Generator, sigma: tuple[float, float]) -> np.ndarray:
    """Sinc with p 0.1, else iso/aniso Gaussian, generalized Gaussian or plateau (paper probabilities)."""
    k = int(rng.choice(_ODD(7, 21)))
    if rng.random() < 0.1:
        return ref_sinc(k, rng.uniform(np.pi / 3 if k < 13 else np.pi / 5, np.pi))
    kind = rng.choice(["iso", "aniso", "giso", "ganiso", "piso", "paniso"], p=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sx = rng.uniform(*sigma)
    sy, theta = (sx, 0.0) if kind in ("iso", "giso", "piso") else (rng.uniform(*sigma), rng.uniform(-np.pi, np.pi))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx**2, sy**2]) @ rot.T)
    ax = np.arange(k) - k // 2
    pts = np.stack(np.meshgrid(ax, ax), -1)
    q = np.einsum("...i,ij,...j->...", pts, inv, pts)
    if kind.startswith("g"):
        kern = np.exp(-0.5 * q ** rng.uniform(0.5, 4.0))
    elif kind.startswith("p"):
        kern = 1 / (1 + q ** rng.uniform(1.0, 2.0))
    else:
        kern = np.exp(-0.5 * q)
    return kern / kern.sum()


def ref_noise(img: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float], poisson: tuple[float, float]) -> np.ndarray:
    grey = rng.random() < 0.4
    if rng.random() < 0.5:
        shape = img.shape[:2] + (1,) if grey else img.shape
        return np.clip(img + rng.normal(0, rng.uniform(*sigma) / 255, shape), 0, 1).astype(np.float32)
    src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] if grey else img
    levels = 2 ** np.ceil(np.log2(len(np.unique((src * 255).round()))))
    noise = rng.poisson(src * levels) / levels - src
    return np.clip(img + rng.uniform(*poisson) * noise, 0, 1).astype(np.float32)


def ref_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", (img[..., ::-1] * 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255


def ref_resize(img: np.ndarray, rng: np.random.Generator, probs, span, base: tuple[int, int]) -> np.ndarray:
    way = rng.choice(3, p=probs)
    f = rng.uniform(1, span[1]) if way == 0 else rng.uniform(span[0], 1) if way == 1 else 1.0
    size = (max(1, int(base[1] * f)), max(1, int(base[0] * f)))
    return np.clip(cv2.resize(img, size, interpolation=_REF_MODES[rng.integers(3)]), 0, 1)


def ref_realesrgan(hr: np.ndarray, rng: np.random.Generator, scale: int = 4) -> np.ndarray:
    """Blur, resize, noise, JPEG; again (blur with p 0.8); final resize + sinc (p 0.8) and JPEG in random order."""
    h, w = hr.shape[:2]
    lr = (h // scale, w // scale)
    img = np.clip(cv2.filter2D(hr, -1, ref_kernel(rng, (0.2, 3.0)), borderType=cv2.BORDER_REFLECT_101), 0, 1)
    img = ref_resize(img, rng, [0.2, 0.7, 0.1], (0.15, 1.5), img.shape[:2])
    img = ref_noise(img, rng, (1, 30), (0.05, 3.0))
    img = ref_jpeg(img, int(rng.uniform(30, 95)))
    if rng.random() < 0.8:
        img = np.clip(cv2.filter2D(img, -1, ref_kernel(rng, (0.2, 1.5)), borderType=cv2.BORDER_REFLECT_101), 0, 1)
    img = ref_resize(img, rng, [0.3, 0.4, 0.3], (0.3, 1.2), lr)
    img = ref_noise(img, rng, (1, 25), (0.05, 2.5))
    img = ref_jpeg(img, int(rng.uniform(30, 95)))
    sinc = ref_sinc(int(rng.choice(_ODD(7, 21))), rng.uniform(np.pi / 3, np.pi)) if rng.random() < 0.8 else None
    mode, quality = _REF_MODES[rng.integers(3)], int(rng.uniform(30, 95))

    def final_resize(x: np.ndarray) -> np.ndarray:
        x = np.clip(cv2.resize(x, (lr[1], lr[0]), interpolation=mode), 0, 1)
        return np.clip(cv2.filter2D(x, -1, sinc, borderType=cv2.BORDER_REFLECT_101), 0, 1) if sinc is not None else x

    img = ref_jpeg(final_resize(img), quality) if rng.random() < 0.5 else final_resize(ref_jpeg(img, quality))
    return (img * 255).round() / 255


def ref_bicubic(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """cv2's bicubic: a = -0.75 and no antialiasing when downscaling, unlike our MATLAB-exact imresize."""
    h, w = hr.shape[:2]
    lr = cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_CUBIC)
    return (np.clip(lr, 0, 1) * 255).round() / 255


# ------------------------------------------------------------------------------------ degradation speed
def photo_crops(size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` random size x size crops of the scikit-image training photos (what the datasets crop from)."""
    photos = [read_image(p) for p in skimage_photos("train")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        ph = photos[i % len(photos)]
        top, left = rng.integers(ph.shape[0] - size + 1), rng.integers(ph.shape[1] - size + 1)
        out.append(np.ascontiguousarray(ph[top : top + size, left : left + size]))
    return out


def patches_per_s(fn: Callable[[np.ndarray, np.random.Generator], object], crops: list[np.ndarray],
                  min_seconds: float) -> dict:
    """One call = every crop once; each call draws with the next seed (the same seeds for every pipeline), so the
    median call covers more parameter draws than one call holds."""
    seeds = iter(range(10**9))

    def run() -> None:
        rng = np.random.default_rng(next(seeds))
        for c in crops:
            fn(c, rng)

    with single_thread(), pc.PeakMemory(CPU) as mem:
        t = pc.time_call(run, CPU, warmup=1, repeats=3, min_seconds=min_seconds)
    return {"patches_per_s": round(len(crops) / t["seconds"], 1), "peak_mib": mem.mib}


def paired(a: Callable, b: Callable, crops: list[np.ndarray], min_seconds: float, b_cv2_threads: int | None = 1) -> dict:
    """Patches/s of `a` and `b` timed in alternation (a call of each per round, both on the round's seed): a
    neighbour's load then hits both alike, so their ratio holds even when the absolute rates drift.
    `b_cv2_threads`: OpenCV's threads while `b` runs (None: its default); `a` always runs on one thread."""
    times: dict[str, list[float]] = {"a": [], "b": []}
    start, rounds = time.perf_counter(), 0
    with single_thread(), pc.PeakMemory(CPU) as mem:
        while rounds < (2 if pc.quick() else 4) or time.perf_counter() - start < min_seconds:
            for key, fn, threads in (("a", a, 1), ("b", b, b_cv2_threads or _CV2_DEFAULT_THREADS)):
                cv2.setNumThreads(threads)
                rng = np.random.default_rng(1000 + rounds)
                t0 = time.perf_counter()
                for c in crops:
                    fn(c, rng)
                if rounds:  # the first round warms up
                    times[key].append(time.perf_counter() - t0)
            rounds += 1
    rate = {k: round(len(crops) / statistics.median(v), 1) for k, v in times.items()}
    return {"a_patches_per_s": rate["a"], "b_patches_per_s": rate["b"], "a_over_b": round(rate["a"] / rate["b"], 3),
            "rounds": rounds - 1, "peak_mib": mem.mib}


class separable_off:
    """Our Real-ESRGAN chain as it was before the separable-filter speed-up (every kernel through cv2.filter2D)."""

    def __enter__(self) -> None:
        self._saved = D.separable_terms
        D.separable_terms = lambda kernel: None

    def __exit__(self, *exc: object) -> None:
        D.separable_terms = self._saved


def degradation_cases() -> dict[str, dict]:
    """name -> {config, patch_px, fn(hr, rng)}: each pipeline as its experiment's config builds it."""
    sr, esrgan = compose_train("sr_quickstart"), compose_train("esrgan_x4")
    real = compose_train("realesrgan_x4")
    film_q, film = compose_train("film_restore_quickstart"), compose_train("film_restore")
    col_q, col = compose_train("colorize_quickstart"), compose_train("colorize")
    bicubic = instantiate(sr.data.train.degradation)
    damage_q, damage = instantiate(film_q.data.train.damage), instantiate(film.data.train.damage)
    grey, old = GreyInput(None), GreyInput(instantiate(col.data.train.damage))
    return {
        "bicubic_x4": dict(config="sr_quickstart", patch_px=sr.data.crop_size, fn=lambda x, r: bicubic(x, r)),
        "bicubic_x4_128": dict(config="esrgan_x4", patch_px=esrgan.data.crop_size, fn=lambda x, r: bicubic(x, r)),
        "realesrgan_x4": dict(config="realesrgan_x4", patch_px=real.data.crop_size,
                              fn=(lambda d: lambda x, r: d(x, r))(instantiate(real.data.train.degradation))),
        "film_damage": dict(config="film_restore_quickstart", patch_px=film_q.data.crop_size,
                            fn=lambda x, r: damaged_pair(x, r, damage_q, film_q.data.train.grey)),
        "film_damage_128": dict(config="film_restore", patch_px=film.data.crop_size,
                                fn=lambda x, r: damaged_pair(x, r, damage, film.data.train.grey)),
        "grey": dict(config="colorize_quickstart", patch_px=col_q.data.crop_size,
                     fn=lambda x, r: grey(x, r)),
        "old_photo": dict(config="colorize (data=colorize_damaged)", patch_px=col.data.crop_size, fn=lambda x, r: old(x, r)),
    }


def synthetic_motion_items_per_s(min_seconds: float) -> dict:
    """interp_quickstart's items (a 3-frame window rendered from a photo, augmented, as tensors) per second."""
    cfg = compose_train("interp_quickstart")
    ds = instantiate(cfg.data.train)
    for i in range(len(ds.paths)):  # decode the photos first: the dataset keeps them
        ds[i]
    idx = iter(range(10**9))
    with single_thread(), pc.PeakMemory(CPU) as mem:
        t = pc.time_call(lambda: [ds[next(idx)] for _ in range(16)], CPU, warmup=1, repeats=3, min_seconds=min_seconds)
    return {"config": "interp_quickstart (3 frames per item)", "patch_px": cfg.data.crop_size,
            "patches_per_s": round(16 / t["seconds"], 1), "peak_mib": mem.mib}


def degradation_bench() -> tuple[dict, dict, dict]:
    quick = pc.quick()
    results, crops = {}, {}
    cases = degradation_cases()
    for name, case in cases.items():
        crops[name] = photo_crops(case["patch_px"], 8 if quick else (24 if case["patch_px"] >= 256 else 64))
        results[name] = {"config": case["config"], "patch_px": case["patch_px"],
                         **patches_per_s(case["fn"], crops[name], 0.0 if quick else (2.0 if case["patch_px"] >= 256 else 0.6))}
    results["interp_synthetic"] = synthetic_motion_items_per_s(0.0 if quick else 0.6)

    short, long = (0.0, 0.0) if quick else (1.5, 6.0)
    bicubic, real = cases["bicubic_x4"]["fn"], cases["realesrgan_x4"]["fn"]
    bi = paired(bicubic, lambda x, r: ref_bicubic(x, 4), crops["bicubic_x4"], short)
    re = paired(real, lambda x, r: ref_realesrgan(x, r, 4), crops["realesrgan_x4"], long)
    reference = {
        "bicubic_x4": {
            "patch_px": cases["bicubic_x4"]["patch_px"], "ours_patches_per_s": bi["a_patches_per_s"],
            "reference_patches_per_s": bi["b_patches_per_s"], "ours_over_reference": bi["a_over_b"],
            "rounds": bi["rounds"], "peak_mib": bi["peak_mib"],
            "reference": "cv2.resize INTER_CUBIC + 8-bit rounding: not MATLAB's antialiased bicubic (ours is, exactly), "
                         "so it aliases; it is the cheapest plain OpenCV downscale, not an equal one",
        },
        "realesrgan_x4": {
            "patch_px": cases["realesrgan_x4"]["patch_px"], "ours_patches_per_s": re["a_patches_per_s"],
            "reference_patches_per_s": re["b_patches_per_s"], "ours_over_reference": re["a_over_b"],
            "rounds": re["rounds"], "peak_mib": re["peak_mib"],
            "degradation_strength_vs_plain_bicubic": strength(real, crops["realesrgan_x4"]),
            "reference": "per-image numpy/OpenCV second-order chain (cv2.filter2D kernels, cv2.resize, np.random "
                         "Gaussian/Poisson noise, cv2 JPEG, final sinc+resize/JPEG in random order), paper ranges",
        },
    }

    def on_off(pair: dict, what: str) -> dict:
        return {"what": what, "on_patches_per_s": pair["a_patches_per_s"], "off_patches_per_s": pair["b_patches_per_s"],
                "speedup": pair["a_over_b"], "rounds": pair["rounds"]}

    def real_without_separable(x: np.ndarray, r: np.random.Generator) -> np.ndarray:
        with separable_off():
            return real(x, r)

    speedups = {
        "bicubic_x4_dense_matmul": on_off(
            paired(bicubic, lambda x, r: quantize(imresize(x, scale=0.25)), crops["bicubic_x4"], short),
            "BicubicDegradation: imresize's weights as two matmuls (on) vs imresize's numpy tap loop (off, before)"),
        "realesrgan_x4_separable_blur": on_off(
            paired(real, real_without_separable, crops["realesrgan_x4"], long / 2),
            "degradations.filter2d: separable passes for low-rank kernels (on) vs cv2.filter2D always (off, before)"),
        "realesrgan_x4_cv2_one_thread": on_off(
            paired(real, real, crops["realesrgan_x4"], long / 2, b_cv2_threads=None),
            f"OpenCV on 1 thread (on) vs its default {_CV2_DEFAULT_THREADS} threads (off: what DataLoader workers "
            "get today; torch is set to 1 thread in workers, OpenCV is not)"),
    }
    return results, reference, speedups


def strength(ours: Callable, crops: list[np.ndarray]) -> dict:
    """Mean absolute difference (8-bit levels) of each chain's LR from the plain bicubic LR of the same crops:
    similar figures say the reference does comparable work, so the speed ratio compares like with like."""
    def mad(fn: Callable) -> float:
        rng = np.random.default_rng(2)
        return float(np.mean([np.abs(fn(c, rng) - ref_bicubic(c)).mean() for c in crops for _ in range(2)]) * 255)
    return {"ours_mad_levels": round(mad(ours), 2), "reference_mad_levels": round(mad(lambda x, r: ref_realesrgan(x, r)), 2)}


# ---------------------------------------------------------------------------------------- loader vs step
def worker_memory_mib() -> tuple[list[float], list[float]]:
    """(peak RSS, current private memory) of this process's children, i.e. the DataLoader workers, in MiB. The
    peak RSS (VmHWM) counts the libraries and pages shared with the parent by fork; the private part is what
    each worker adds (its image cache, its batches)."""
    me, peaks, private = str(os.getpid()), [], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            if f"\nPPid:\t{me}\n" not in status:
                continue
            rollup = (entry / "smaps_rollup").read_text()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        kib = lambda text, key: sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(key))  # noqa: E731
        peaks.append(round(kib(status, "VmHWM:") / 1024, 1))
        private.append(round(kib(rollup, "Private_") / 1024, 1))
    return sorted(peaks), sorted(private)


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict]:
    """Batches across epoch ends, as the trainer draws them (the skimage-only sets are 43 batches long)."""
    while True:
        yield from loader


def to_device(batch: dict, device: torch.device, non_blocking: bool = False) -> dict:
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


def datamodule(cfg: DictConfig, workers: int, pin: bool = False):
    torch.manual_seed(cfg.seed)  # fresh datasets (empty caches) for every setting: no warm cache inherited by fork
    return instantiate(cfg.data, num_workers=workers, pin_memory=pin)


def time_loader(cfg: DictConfig, workers: int, batches: int, min_seconds: float, pin: bool = False,
                device: torch.device = CPU) -> dict:
    """Seconds per batch of the training loader alone, after the first batch (worker start-up, reported apart)
    and as many batches as the workers prefetch (a full queue would flatter the rate). Images still being
    decoded into the per-worker caches fall inside the timed window: a conservative figure."""
    loader = datamodule(cfg, workers, pin).train_dataloader()
    with pc.PeakMemory(CPU) as mem:
        start = time.perf_counter()
        stream = endless(loader)
        next(stream)
        first = time.perf_counter() - start
        for _ in range(2 * workers + 1):
            next(stream)
        t0, n = time.perf_counter(), 0
        while n < batches or time.perf_counter() - t0 < min_seconds:
            batch = next(stream)
            if device.type == "cuda":
                to_device(batch, device, non_blocking=pin)
            n += 1
        pc.sync(device)
        per_batch = (time.perf_counter() - t0) / n
        peaks, private = worker_memory_mib() if workers else ([], [])
    del stream, loader  # shuts the (persistent) workers down
    return {"seconds_per_batch": round(per_batch, 5), "batches_per_s": round(1 / per_batch, 1),
            "first_batch_seconds": round(first, 3), "timed_batches": n, "main_peak_mib": mem.mib,
            "worker_peak_rss_mib": peaks, "worker_private_mib": private}


class TrainStep:
    """The quickstart's training iteration without Lightning (bench/perf_training.PlainStep, the plain loop that
    bench measures the framework against): `pretrain(batch)`, or `gan(batch)` for a D then a G step."""

    def __init__(self, cfg: DictConfig, device: torch.device) -> None:
        from perf_training import PlainStep

        from restoregan.training.run import build_module

        torch.manual_seed(cfg.seed)
        self.m = build_module(cfg).to(device).train()
        self._step = PlainStep(self.m, cfg.trainer.precision)

    def pretrain(self, batch: dict) -> None:
        self._step(batch, gan=False, iteration=100)

    def gan(self, batch: dict) -> None:
        self._step(batch, gan=True, iteration=100)


def time_steps(cfg: DictConfig, device: torch.device) -> tuple[TrainStep, dict, dict]:
    quick = pc.quick()
    step = TrainStep(cfg, device)
    batch = to_device(next(iter(datamodule(cfg, 0).train_dataloader())), device)
    out = {}
    with pc.PeakMemory(device) as mem:
        out["pretrain_seconds_per_step"] = round(pc.time_call(
            lambda: step.pretrain(batch), device, warmup=1 if quick else 2, repeats=5, min_seconds=0 if quick else 1.5)["seconds"], 4)
        if step.m.has_gan and cfg.gan_iters > 0:
            out["gan_seconds_per_step"] = round(pc.time_call(
                lambda: step.gan(batch), device, warmup=0 if quick else 1, repeats=3, min_seconds=0 if quick else 1.0)["seconds"], 4)
        else:
            out["gan_seconds_per_step"] = None
            out["gan_note"] = f"no GAN phase in this config (gan_iters={cfg.gan_iters})"
    out["peak_mib"], out["peak_kind"] = mem.mib, mem.kind
    return step, batch, out


def loader_with_training(cfg: DictConfig, step: TrainStep, device: torch.device, iterations: int, workers: int = 2) -> dict:
    """The real situation: the 2-worker loader feeding pretrain steps in this process (workers and trainer share
    the cores). Wait = time spent in next(); the first iterations (worker start-up, full queue) are left out."""
    pin = device.type == "cuda"
    stream = endless(datamodule(cfg, workers, pin).train_dataloader())
    for _ in range(1 if pc.quick() else 3):
        step.pretrain(to_device(next(stream), device, pin))
    waits, totals = [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        batch = to_device(next(stream), device, pin)
        t1 = time.perf_counter()
        step.pretrain(batch)
        pc.sync(device)
        waits.append(t1 - t0)
        totals.append(time.perf_counter() - t0)
    del stream
    return {"workers": workers, "iterations": iterations,
            "seconds_per_iteration": round(statistics.median(totals), 4),
            "data_wait_seconds_per_iteration": round(statistics.mean(waits), 5),
            "data_wait_fraction": round(sum(waits) / sum(totals), 4)}


def training_json_step(name: str) -> float | None:
    """configs.<name>.seconds_per_step from bench/perf_training's result, when that bench has run."""
    path = pc.RESULTS / "training.json"
    try:
        import json

        return json.loads(path.read_text())["configs"][name]["seconds_per_step"]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def loader_bench(device: torch.device, configs: tuple[str, ...] = QUICKSTARTS) -> dict:
    quick = pc.quick()
    out = {}
    for name in configs:
        cfg = compose_train(name, ("pretrained_backbones=false",))
        res: dict = {"batch_size": cfg.data.batch_size, "crop_px": cfg.data.crop_size, "workers": {}}
        for w in WORKERS:
            res["workers"][str(w)] = time_loader(cfg, w, 2 if quick else 12, 0.0 if quick else 1.0)
        if device.type == "cuda":
            res["pin_memory_2_workers"] = {str(p).lower(): time_loader(cfg, 2, 3 if quick else 12, 0.0 if quick else 1.0,
                                                                   pin=p, device=device)["seconds_per_batch"] for p in (True, False)}
        else:
            res["pin_memory_2_workers"] = {"true": None, "false": None,
                                           "reason": "no CUDA: pinned memory only speeds host-to-GPU copies"}
        step, _, res["step"] = time_steps(cfg, device)
        res["step"]["training_json_seconds_per_step"] = training_json_step(name)
        fastest = res["step"]["pretrain_seconds_per_step"]  # the pretrain step is the shorter: the stricter test
        res["loader_seconds_per_batch_over_step_seconds"] = {
            f"workers_{w}": round(res["workers"][str(w)]["seconds_per_batch"] / fastest, 4) for w in WORKERS}
        res["with_training"] = loader_with_training(cfg, step, device, 2 if quick else 10)
        res["with_training"]["step_alone_seconds"] = fastest
        res["keeps_up"] = bool(res["loader_seconds_per_batch_over_step_seconds"]["workers_2"] < 1
                               and res["with_training"]["data_wait_fraction"] < WAIT_LIMIT)
        out[name] = res
    return out


def main(configs: tuple[str, ...] = QUICKSTARTS) -> Path:
    device = pc.bench_device()
    start = time.perf_counter()
    degradation, reference, speedups = degradation_bench()
    print(f"\ndegradation, one process, one thread ({time.perf_counter() - start:.0f} s)")
    print(f"{'pipeline':<20} {'config':<44} {'patch':>5} {'patches/s':>10} {'peak MiB':>9}")
    for name, r in degradation.items():
        print(f"{name:<20} {r['config'][:44]:<44} {r['patch_px']:>5} {r['patches_per_s']:>10.1f} {r['peak_mib']:>9}")
    for name, r in reference.items():
        print(f"{name}: ours / plain OpenCV reference = {r['ours_over_reference']:.3f} "
              f"({r['ours_patches_per_s']} vs {r['reference_patches_per_s']} patches/s)")
    for name, r in speedups.items():
        print(f"{name}: x{r['speedup']:.2f} ({r['on_patches_per_s']} on vs {r['off_patches_per_s']} off patches/s)")

    loader = loader_bench(device, configs)
    print(f"\nloader vs training step on {device} ({time.perf_counter() - start:.0f} s)")
    print(f"{'config':<24} {'s/batch w0':>10} {'w1':>8} {'w2':>8} {'step s':>8} {'w2/step':>8} {'wait frac':>9} keeps up")
    for name, r in loader.items():
        w = [r["workers"][str(k)]["seconds_per_batch"] for k in WORKERS]
        print(f"{name:<24} {w[0]:>10.4f} {w[1]:>8.4f} {w[2]:>8.4f} {r['step']['pretrain_seconds_per_step']:>8.4f} "
              f"{r['loader_seconds_per_batch_over_step_seconds']['workers_2']:>8.4f} "
              f"{r['with_training']['data_wait_fraction']:>9.4f} {r['keeps_up']}")
    return pc.write_result("data", {
        "budget_seconds": 180,
        "elapsed_seconds": round(time.perf_counter() - start, 1),
        "threads_per_worker": "torch 1, OpenCV 1 (speedups.realesrgan_x4_cv2_one_thread compares OpenCV's default)",
        "degradation": degradation,
        "reference": reference,
        "speedups": speedups,
        "loader": loader,
        "verdict": "keeps_up: loader alone with 2 workers faster than the pretrain step (ratio < 1) and, feeding a "
                   f"training loop in this process, under {WAIT_LIMIT:.0%} of the iteration spent waiting for data "
                   "(the second is the real situation and the verdict; the first is the headroom)",
    })


if __name__ == "__main__":
    main()
