"""Bench: speed of the film pipeline on the real newsreel clip (../shared/data/footage/a_bomb_blast_effects_part.mp4,
432x320, 29 fps): frames/s of each stage alone at the clip's resolution, then the whole four-stage pipeline as
infer.py runs it (segments, lossless work files, final H.264 encode), with interpolation after upscaling (the
default order) and before it.

python bench/pipeline_speed.py [--frames 8] [--pipeline-frames 4] [--device cpu] [--size WxH] [--bf16]
    [--channels-last] [--exact] [--out PATH]  -> bench/results/pipeline_speed.json or PATH (names the slowest stage)

Each stage uses the newest export of its task under runs/ (what the pipeline picks by default); where none
exists, an untrained net of that task's quickstart architecture (experiment=<task>_quickstart) stands in, written
to runs/pipeline_bench/ (outside the runs/*/export/ pattern, so the pipeline never picks it up by itself). Speed
does not depend on the weights; the JSON says which were used. Runs with OMP_NUM_THREADS=1 unless set.
--size resizes the decoded frames (e.g. 1920x1080, bench/gpu.sh) for the per-stage speeds; the whole-pipeline runs
always take the clip as it is (--pipeline-frames 0 skips them). --bf16 / --channels-last / --exact: infer.py's switches
(without them, its defaults: bf16 and channels_last auto).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from restoregan.atomic import atomic_write_bytes  # noqa: E402
from restoregan.data.video import probe  # noqa: E402
from restoregan.pipeline.checkpoints import newest_export  # noqa: E402
from restoregan.pipeline.run import build_stages, run_options, run_pipeline, timed_frames  # noqa: E402
from restoregan.tasks.base import Item  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import export_untrained  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "footage" / "a_bomb_blast_effects_part.mp4"
OUT = ROOT / "bench" / "results" / "pipeline_speed.json"
SCRATCH = ROOT / "runs" / "pipeline_bench"
QUICKSTART = {"restore": "film_restore_quickstart", "colorize": "colorize_quickstart", "upscale": "sr_quickstart",
              "interpolate": "interp_quickstart"}


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides)


def untrained_export(stage: str) -> Path:
    """An untrained generator of the stage's quickstart experiment, exported as train.py would."""
    return export_untrained(QUICKSTART[stage], [], SCRATCH / f"untrained_{stage}" / "export" / "generator")


def checkpoints(cfg) -> dict[str, dict]:
    """Each film stage's newest export under runs/ (by the stage's task), else an untrained stand-in."""
    found = {}
    for stage in cfg.pipeline.order:
        path = newest_export(ROOT / "runs", cfg.stages[stage].task)
        found[stage] = {"ckpt": str((path or untrained_export(stage)).relative_to(ROOT)), "trained": path is not None,
                        "quickstart_architecture": path is None}
    return found


def _resized(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    return image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def stage_speeds(cfg, ckpts: dict[str, Path], device: torch.device, frames: int,
                 size: tuple[int, int] | None = None) -> dict[str, dict]:
    """Each stage alone on the same decoded frames (resized to `size`, (width, height), if given); model loading
    and the first batch's warm-up not timed."""
    info = probe(CLIP)
    items = [Item(it.index, it.pts, it.tb, _resized(it.image, size).astype(np.float32) / 255) for _, it in
             zip(range(frames), timed_frames(CLIP, info, Fraction(24), frames))]
    speeds = {}
    for stage in build_stages(cfg, list(ckpts), ckpts, run_options(cfg, device)):
        with torch.inference_mode():
            list(stage(iter(items[:2])))  # warm-up: allocator, oneDNN kernel choice
            start = time.perf_counter()
            out = list(stage(iter(items)))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
        h, w = items[0].image.shape[:2]
        speeds[stage.name] = {"input_frames_per_s": round(len(items) / seconds, 3),
                              "output_frames_per_s": round(len(out) / seconds, 3),
                              "input_size": [w, h], "output_size": [out[0].image.shape[1], out[0].image.shape[0]],
                              "frames": len(items), "seconds": round(seconds, 2)}
        print(f"{stage.name:12s} {speeds[stage.name]['input_frames_per_s']:8.2f} input frames/s at {w}x{h}", flush=True)
    return speeds


def whole_pipeline(order: list[str], ckpts: dict[str, Path], device: str, frames: int,
                   switches: list[str] = ()) -> dict:
    output = SCRATCH / f"newsreel_{'_'.join(order)}.mp4"
    overrides = ["pipeline=film", f"device={device}", f"input={CLIP}", f"output={output}",
                 f"pipeline.order=[{','.join(order)}]", f"video.max_frames={frames}", "video.resume=false",
                 *(f"stages.{name}.ckpt={path}" for name, path in ckpts.items()), *switches]
    start = time.perf_counter()
    run_pipeline(_compose("infer", overrides))
    seconds = time.perf_counter() - start
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(video=0))
        fps, size = float(stream.average_rate), [stream.codec_context.width, stream.codec_context.height]
        duration = float(stream.duration * stream.time_base)
    clip_fps = float(probe(CLIP).fps)
    result = {"order": order, "input_frames": frames, "seconds": round(seconds, 1),
              "input_frames_per_s": round(frames / seconds, 3), "output": str(output.relative_to(ROOT)),
              "output_frames": n, "output_fps": round(fps, 3), "output_size": size,
              "output_duration_s": round(duration, 4),
              "input_duration_s": round(frames / clip_fps, 4),
              "duration_within_one_frame": abs(duration - frames / clip_fps) <= 1 / clip_fps}
    print(f"{' -> '.join(order)}: {frames} frames in {seconds:.1f} s -> {n} frames {size[0]}x{size[1]} "
          f"at {fps:.2f} fps")
    return result


def _size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), width then height."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"--size {text!r}: width and height must be positive")
    return w, h


def arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per stage measurement")
    parser.add_argument("--pipeline-frames", type=int, default=4, help="input frames of each whole-pipeline run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=_size, help="WxH: resize the frames of the per-stage speeds (default: as is)")
    parser.add_argument("--bf16", action="store_true", help="infer.py bf16=true (bfloat16 autocast)")
    parser.add_argument("--channels-last", action="store_true", help="infer.py channels_last=true")
    parser.add_argument("--exact", action="store_true", help="infer.py exact=true (fp32, NCHW: the defaults off)")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write")
    return parser


def main() -> None:
    args = arg_parser().parse_args()
    switches = ((["bf16=true"] if args.bf16 else []) + (["channels_last=true"] if args.channels_last else [])
                + (["exact=true"] if args.exact else []))
    if not CLIP.is_file():
        sys.exit(f"skipped: needs {CLIP} (the shared footage beside the repo); not present here")
    cfg = _compose("infer", ["pipeline=film", f"device={args.device}", "half=false", *switches])
    found = checkpoints(cfg)
    ckpts = {stage: ROOT / c["ckpt"] for stage, c in found.items()}
    device = torch.device(args.device)
    speeds = stage_speeds(cfg, ckpts, device, args.frames, args.size)
    slowest = min(speeds, key=lambda s: speeds[s]["input_frames_per_s"])
    runs = [whole_pipeline(order, ckpts, args.device, args.pipeline_frames, switches)
            for order in (["restore", "colorize", "upscale", "interpolate"],
                          ["restore", "colorize", "interpolate", "upscale"]) if args.pipeline_frames > 0]
    info = probe(CLIP)
    report = {
        "clip": str(CLIP.relative_to(ROOT.parent)), "clip_size": [info.size[1], info.size[0]],
        "clip_fps": round(float(info.fps), 3), "device": args.device,
        "stage_input_size": list(args.size) if args.size else [info.size[1], info.size[0]], "switches": switches,
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "checkpoints": found,
        "stages": speeds,
        "slowest_stage": slowest,
        "definition": "input frames/s: clip frames (432x320) a stage consumes per second, alone, model loading and "
                      "a warm-up batch excluded; interpolate makes 2 output frames per input frame",
        "whole_pipeline": runs,
        "cheaper_order": min(runs, key=lambda r: r["seconds"])["order"] if runs else None,
    }
    atomic_write_bytes(args.out, (json.dumps(report, indent=2) + "\n").encode())
    print(f"slowest stage: {slowest}; wrote {args.out}")


if __name__ == "__main__":
    main()
