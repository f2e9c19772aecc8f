"""Entry point behind evaluate.py: load checkpoints, pick the task's benchmark, report."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig

from restoregan.cli import check_ranges
from restoregan.data.io import set_max_pixels
from restoregan.evaluation.report import check_report_outputs
from restoregan.evaluation.sr import Options, evaluate_sr
from restoregan.gans.checkpoint import LoadedGenerator, load_generator
from restoregan.inference.tiled import check_tiling, resolve_device


def checkpoint_paths(ckpt: str | list | ListConfig | None) -> list[Path]:
    """`ckpt=PATH` or `ckpt='[A,B]'` -> paths; omitted -> none (baseline-only report)."""
    if ckpt is None:
        return []
    items = [ckpt] if isinstance(ckpt, (str, Path)) else list(ckpt)
    return [Path(str(p)) for p in items]


def method_names(paths: list[Path]) -> list[str]:
    """File stems, made unique (parent/stem, then a counter); never 'bicubic', the baseline's name."""
    taken, names = {"bicubic"}, []
    for path in paths:
        candidates = [path.stem, f"{path.parent.name}/{path.stem}"]
        name = next((c for c in candidates if c not in taken), None)
        i = 2
        while name is None:
            name = f"{path.stem}-{i}" if f"{path.stem}-{i}" not in taken else None
            i += 1
        taken.add(name)
        names.append(name)
    return names


def load_models(paths: list[Path], device) -> dict[str, LoadedGenerator]:
    models = {}
    for name, path in zip(method_names(paths), paths):
        try:
            models[name] = load_generator(path, device)
        except Exception as err:  # the loader's message, one line, starting with the path
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from err
        models[name].net.eval()
    return models


TASKS = ("sr", "colorize", "interp", "restore")
# checked up front (restoregan.cli.check_ranges): key -> (least value; what it takes)
OPTIONS = {"grid_images": (1, "a number of rows >= 1"), "interp.max_triplets": (1, "a number of triplets >= 1"),
           "temporal.max_frames": (2, "a number of frames >= 2"), "scale": (1, "a scale factor >= 1")}


def evaluate(cfg: DictConfig) -> dict:
    """Run the benchmark `cfg` (conf/evaluate.yaml) describes; returns the metrics.json content."""
    if cfg.out_dir is None:
        raise ValueError("out_dir=DIR is required (python evaluate.py ckpt=... hr_dir=... out_dir=...)")
    set_max_pixels(cfg.max_pixels)  # checked from each image's header before it is decoded
    check_tiling(cfg.tile, cfg.tile_overlap)
    check_ranges(cfg, OPTIONS)
    check_report_outputs(cfg)  # before any work: the report must not land on, or among, the inputs
    if cfg.task == "temporal":
        return evaluate_temporal_task(cfg)
    device = resolve_device(cfg.device)
    paths = checkpoint_paths(cfg.ckpt)
    models = load_models(paths, device)
    task = report_task(cfg, models, paths)
    needs = "input" if task == "interp" else "hr_dir"
    if cfg[needs] is None:
        example = "input=VIDEO_OR_FRAME_DIR" if task == "interp" else "hr_dir=DIR"
        raise ValueError(f"{needs}=... is required for {task!r} models (python evaluate.py ckpt=... {example} out_dir=...)")
    opts = Options(
        device=device,
        tile=cfg.tile,
        tile_overlap=cfg.tile_overlap,
        lpips=cfg.lpips,
        lpips_net=cfg.lpips_net,
        grid_images=cfg.grid_images,
    )
    if task == "colorize":
        from restoregan.evaluation.colorize import evaluate_colorize

        return evaluate_colorize(cfg, models, opts)
    if task == "interp":
        from restoregan.evaluation.interp import evaluate_interp

        return evaluate_interp(cfg, models, opts)
    if task == "restore":
        from restoregan.evaluation.restore import evaluate_restore

        return evaluate_restore(cfg, models, opts)
    for (name, m), path in zip(models.items(), paths):
        if m.scale != cfg.scale:
            raise ValueError(f"{path}: a x{m.scale} model, but scale={cfg.scale}")
    nets = {name: m.net for name, m in models.items()}
    lr_dir = None if cfg.lr_dir is None else Path(cfg.lr_dir)
    return evaluate_sr(Path(cfg.hr_dir), Path(cfg.out_dir), cfg.scale, nets, lr_dir, opts, cfg.dataset)


def evaluate_temporal_task(cfg: DictConfig) -> dict:
    """Flicker of a processed video relative to its input: no model is run."""
    if cfg.ckpt is not None:
        raise ValueError("task=temporal compares two videos (input=..., result=...); it takes no ckpt")
    for key in ("input", "result"):
        if cfg[key] is None:
            raise ValueError(f"{key}=... is required (python evaluate.py task=temporal input=ORIGINAL "
                             "result=PROCESSED out_dir=DIR)")
    from restoregan.evaluation.temporal import evaluate_temporal

    return evaluate_temporal(cfg)


def report_task(cfg: DictConfig, models: dict[str, LoadedGenerator], paths: list[Path]) -> str:
    """The checkpoints' task (all must share one); `task=` for a baseline-only report (default sr)."""
    found = {m.task for m in models.values()}
    if len(found) > 1:
        raise ValueError(f"checkpoints of different tasks cannot share a report: {sorted(found)}")
    task = found.pop() if found else (cfg.task or "sr")
    if cfg.task is not None and cfg.task != task:
        path = paths[0] if paths else ""
        raise ValueError(f"{path}: a {task!r} model, but task={cfg.task}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (available: {', '.join(TASKS)})")
    return task
