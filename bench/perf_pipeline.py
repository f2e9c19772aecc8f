"""The film pipeline's speed and overhead (issue 17): the four stages (restore -> colorize -> x2 upscale -> x2
interpolate) over the first 96 frames of the real newsreel (432x320, 29 fps), as `infer.py pipeline=film` runs them
with its defaults, with quickstart-sized models: untrained, seeded stand-ins of each stage's quickstart architecture
(the x2 upscaler is sr_quickstart's SRResNet at scale 2), since speed does not depend on the weights.

    python bench/perf_pipeline.py [--frames 96] [--repeats 1]   # -> bench/results/perf/pipeline.json

Reported per run: input frames/s over the whole `run_pipeline` call (models loaded, segments computed and stored,
the output encoded, everything a user waits for); the models' own forward time (each top-level nn.Module call,
timed by global forward hooks, per generator); and the overhead, (wall - forward) / wall: decoding, colour
conversion, the colour stabiliser, storing segments, encoding, loading. Run with `video.overlap` on (frames decoded
ahead and the output encoded in threads while the models run) and off (between their calls: infer.py's default on
a CPU), alternating, so the switch is measured on and off. Threads: this process's (make bench: all cores).
Budget: about 3 minutes on the 2-core CPU; BENCH_QUICK=1 runs 6 frames once, in the default mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import ROOT, export_untrained, quick, write_result  # noqa: E402

from restoregan.pipeline.run import overlap_setting, run_pipeline  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "footage" / "a_bomb_blast_effects_part.mp4"
SCRATCH = ROOT / "runs" / "perf_pipeline"  # outside runs/*/export/: the pipeline never picks these up by itself
FRAMES = 96  # the measure: the newsreel's first 96 frames
ORDER = ["restore", "colorize", "upscale", "interpolate"]
# stage -> (quickstart experiment, overrides): the pipeline's x2 upscale is the quickstart's SRResNet at scale 2
STANDINS = {"restore": ("film_restore_quickstart", []), "colorize": ("colorize_quickstart", []),
            "upscale": ("sr_quickstart", ["task.scale=2"]), "interpolate": ("interp_quickstart", [])}
GOAL_FPS = 1.5  # input frames/s
GOAL_OVERHEAD = 0.10


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides)


def standin(stage: str) -> Path:
    """An untrained generator of the stage's quickstart architecture, exported as train.py would (seeded)."""
    experiment, extra = STANDINS[stage]
    return export_untrained(experiment, extra, SCRATCH / stage / "export" / "generator")


class ForwardClock:
    """Seconds spent inside top-level nn.Module calls (a module called by another is part of its caller's time),
    per module class (the film stages' generators are of four different classes). On a CPU, where a call's time is
    its work; the bench runs the pipeline on the CPU. Counts the bf16 check at load too (a 48x48 probe: noise)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._local = threading.local()

    def _pre(self, module: torch.nn.Module, args: object) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._local.start = time.perf_counter()
        self._local.depth = depth + 1

    def _post(self, module: torch.nn.Module, args: object, output: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            name = type(module).__name__
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._local.start
            self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def running(self):
        # always_call: a forward that raises (a bf16 probe at load may) still closes its interval
        hooks = [torch.nn.modules.module.register_module_forward_pre_hook(self._pre),
                 torch.nn.modules.module.register_module_forward_hook(self._post, always_call=True)]
        try:
            yield self
        finally:
            for hook in hooks:
                hook.remove()


def run_once(ckpts: dict[str, Path], frames: int, beside: bool) -> dict:
    output = SCRATCH / f"newsreel_overlap_{'on' if beside else 'off'}.mp4"
    cfg = _compose("infer", ["pipeline=film", "device=cpu", f"input={CLIP}", f"output={output}",
                             f"pipeline.order=[{','.join(ORDER)}]", f"video.max_frames={frames}",
                             "video.resume=false", f"video.overlap={str(beside).lower()}",
                             *(f"stages.{name}.ckpt={path}" for name, path in ckpts.items())])
    clock = ForwardClock()
    with clock.running():
        start = time.perf_counter()
        run_pipeline(cfg)
        wall = time.perf_counter() - start
    forward = sum(clock.seconds.values())
    # seconds to the millisecond, so that the stored fields give back the stored overhead to its 4th decimal
    result = {"overlap": beside, "input_frames": frames, "wall_s": round(wall, 3),
              "input_frames_per_s": round(frames / wall, 3), "forward_s": round(forward, 3),
              "overhead": round((wall - forward) / wall, 4),
              "forward_only_input_frames_per_s": round(frames / forward, 3),
              "forward_s_per_generator": {k: round(v, 2) for k, v in sorted(clock.seconds.items())},
              "calls_per_generator": dict(sorted(clock.calls.items()))}
    print(f"overlap={beside}: {frames} frames in {wall:.1f} s = {frames / wall:.2f} input frames/s; "
          f"forward {forward:.1f} s; overhead {result['overhead']:.1%}", flush=True)
    return result


def summarise(runs: list[dict], default_overlap: bool) -> dict:
    """Median of each mode's runs, the speed-up of overlapping, and the verdict of the default mode (infer.py's
    video.overlap=auto on this device) against the issue's goal."""
    modes = {}
    for beside in (True, False):
        mine = [r for r in runs if r["overlap"] is beside]
        if mine:
            modes["on" if beside else "off"] = {
                "input_frames_per_s": statistics.median(r["input_frames_per_s"] for r in mine),
                "overhead": statistics.median(r["overhead"] for r in mine), "runs": len(mine)}
    default = modes["on" if default_overlap else "off"]
    # what the models alone allow: frames / forward time of the runs without encoding threads beside them (their
    # forward passes then have the cores to themselves)
    alone = [r for r in runs if not r["overlap"]] or runs
    out = {"default": {**default, "overlap": default_overlap}, "modes": modes,
           "forward_only_input_frames_per_s": statistics.median(r["forward_only_input_frames_per_s"] for r in alone),
           "meets_goal": default["input_frames_per_s"] >= GOAL_FPS and default["overhead"] < GOAL_OVERHEAD}
    if len(modes) == 2:
        out["overlap_speedup"] = round(modes["on"]["input_frames_per_s"] / modes["off"]["input_frames_per_s"], 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6 if quick() else FRAMES)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode (alternating)")
    args = parser.parse_args(argv)
    if not CLIP.is_file():
        write_result("pipeline", {"skipped": f"needs {CLIP.relative_to(ROOT.parent)} (the shared footage)"})
        return
    ckpts = {stage: standin(stage) for stage in ORDER}
    default = overlap_setting("auto", torch.device("cpu"))
    modes = [default] if quick() else [True, False]
    runs = [run_once(ckpts, args.frames, beside) for _ in range(args.repeats) for beside in modes]
    write_result("pipeline", {
        "clip": str(CLIP.relative_to(ROOT.parent)), "order": ORDER,
        "models": {stage: f"untrained {exp} architecture{' ' + ' '.join(extra) if extra else ''}"
                   for stage, (exp, extra) in STANDINS.items()},
        "goal": {"input_frames_per_s": GOAL_FPS, "overhead_below": GOAL_OVERHEAD},
        "definition": "overhead = (wall - forward) / wall; wall: the whole run_pipeline call (loading, decoding, "
                      "segments, final encode); forward: time inside top-level nn.Module calls",
        "runs": runs, **summarise(runs, default)})


if __name__ == "__main__":
    main()
