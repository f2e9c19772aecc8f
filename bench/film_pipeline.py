"""Bench: the whole four-stage film pipeline over the whole newsreel clip, read back with PyAV.

python bench/film_pipeline.py [stages.X.ckpt=PATH ...] [extra infer.py overrides]  -> bench/results/film_pipeline.json

Issue 5's bar: on ../shared/data/footage/a_bomb_blast_effects_part.mp4 the pipeline (restore, colorize,
upscale, interpolate) writes an mp4 that PyAV reads back at 2x the frame rate, 2x or 4x the size and the same
duration within one frame. Checkpoints: each stage's newest export under runs/ unless given. Also measures the
result's flicker relative to the input (evaluate.py input=CLIP result=OUTPUT, the temporal report).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import av
import torch

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "footage" / "a_bomb_blast_effects_part.mp4"
OUT = ROOT / "runs" / "bench_film_pipeline"


def read_back(path: Path) -> dict:
    """What a player sees: frames, rate, size and duration as PyAV decodes them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
        rate = float(stream.average_rate)
        size = (stream.codec_context.width, stream.codec_context.height)
        has_audio = bool(container.streams.audio)
    # a frame is shown until the next one: the last lasts one frame interval
    duration = times[-1] - times[0] + 1 / rate
    return {"frames": len(times), "fps": round(rate, 4), "size": list(size), "duration_s": round(duration, 4),
            "audio": has_audio}


def main() -> None:
    if not CLIP.exists():
        sys.exit(f"{CLIP} not found: this bench needs ../shared/data/footage")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    output = OUT / "a_bomb_blast_effects_part_restored.mp4"
    args = ["infer.py", "pipeline=film", f"input={CLIP}", f"output={output}", "video.side_by_side=true", *sys.argv[1:]]
    print("$ python " + " ".join(args), flush=True)
    start = time.time()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env=env)
    seconds = time.time() - start
    temporal = OUT / "temporal"
    subprocess.run([sys.executable, "evaluate.py", f"input={CLIP}", f"result={output}",
                    f"out_dir={temporal}"], cwd=ROOT, check=True, env=env)
    source, result = read_back(CLIP), read_back(output)
    report = {
        "command": f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} python " + " ".join(args),
        "wall_seconds": round(seconds, 1),
        "input_frames_per_second": round(source["frames"] / seconds, 3),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "input": source,
        "output": result,
        "checks": {
            "fps_ratio": round(result["fps"] / source["fps"], 4),
            "size_ratio": [result["size"][0] / source["size"][0], result["size"][1] / source["size"][1]],
            "duration_difference_frames": round(abs(result["duration_s"] - source["duration_s"]) * source["fps"], 3),
            "frames_2n": result["frames"] in (2 * source["frames"] - 1, 2 * source["frames"]),
        },
        "temporal_consistency": {k: json.loads((temporal / "metrics.json").read_text())[k] for k in ("relative", "pairs")}
        | {"warp_error": {m: v["warp_error"] for m, v in json.loads((temporal / "metrics.json").read_text())["methods"].items()}},
    }
    path = ROOT / "bench" / "results" / "film_pipeline.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
