"""`make demo`: the whole story on a CPU in about 10 minutes (8 after setup on an otherwise idle 2-core machine;
16 when it is shared with other jobs), with the commands a user would type.

1. Train the four CPU-sized models briefly, two at a time (one thread each): film restoration, colorization,
   super-resolution (x2) and frame interpolation. Each is the quickstart experiment with fewer iterations:
   enough to see what each does, not the benchmark figures (bench/*_quickstart.py train the full schedules).
2. Score each against its baseline: restoration vs the damaged input, colour vs the grey input, x2 vs bicubic,
   interpolation vs linear blending.
3. Run the film pipeline (restore -> colorize -> upscale -> interpolate) over the first seconds of the real
   newsreel clip in ../shared/data/footage (a synthetic damaged clip made from a scikit-image photo when that
   is absent), with a before | after video and a contact sheet, and measure its flicker against the input.

Everything lands in runs/demo_*/ and runs/demo/; the last lines say where.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CLIP = SHARED / "footage" / "a_bomb_blast_effects_part.mp4"
OUT = Path("runs/demo")
CLIP_FRAMES = 48  # of the newsreel's 360: the pipeline's x2 upscale and interpolation are the slow part on CPU

# name -> train.py arguments: the quickstarts, shortened (their benches train the full schedules)
TRAININGS = {
    "demo_restore": ["experiment=film_restore_quickstart", "pretrain_iters=500", "d_pretrain_iters=20", "gan_iters=40",
                     "val_every=270"],
    "demo_colorize": ["experiment=colorize_quickstart", "pretrain_iters=400", "d_pretrain_iters=20", "gan_iters=40",
                      "val_every=230"],
    "demo_sr": ["experiment=sr_quickstart", "task.scale=2", "data.crop_size=64", "pretrain_iters=700", "gan_iters=60",
                "val_every=380"],
    "demo_interp": ["experiment=interp_quickstart", "pretrain_iters=900", "gan_iters=60", "val_every=480"],
}


def env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def sh(*args: str) -> None:
    print(f"\n$ python {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env=env())


def train_pairs() -> None:
    """Two trainings at a time, one thread each: on two cores that is faster than one after another with two
    threads. Their output goes to runs/demo/logs/<name>.log (progress bars included)."""
    logs = ROOT / OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    names = list(TRAININGS)
    for pair in (names[:2], names[2:]):
        procs = {}
        for name in pair:
            args = ["train.py", *TRAININGS[name], f"name={name}", "overwrite=true", "logger=csv"]
            print(f"$ python {shlex.join(args)}   > {OUT / 'logs' / name}.log", flush=True)
            procs[name] = (subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env(), stdout=open(logs / f"{name}.log", "w"),
                                            stderr=subprocess.STDOUT), time.time())
        for name, (proc, start) in procs.items():
            if proc.wait() != 0:
                sys.exit(f"error: training {name} failed; see {OUT / 'logs' / name}.log")
            print(f"  {name}: trained in {(time.time() - start) / 60:.1f} min", flush=True)


def sample_clip() -> Path:
    """A short grey clip with film damage, panning over a scikit-image photo (when the footage is absent)."""
    import numpy as np

    from restoregan.atomic import atomic_write
    from restoregan.data.colorize_dataset import to_grey
    from restoregan.data.datasets import skimage_photos
    from restoregan.data.film_damage import FilmDamage
    from restoregan.data.io import read_image
    from restoregan.data.video import VideoWriter

    path = ROOT / OUT / "sample_clip.mp4"
    photo = to_grey(read_image(skimage_photos("val")[0]))
    damage, rng = FilmDamage(), np.random.default_rng(0)

    def write(tmp: str) -> None:
        writer = VideoWriter(tmp, Fraction(24))
        try:
            for i in range(CLIP_FRAMES):
                writer.write(damage(photo[40:280, 3 * i : 3 * i + 320], rng))
        finally:
            writer.close()

    return atomic_write(path, write)


def main() -> None:
    start = time.time()
    print("1. Training four small models, two at a time (logs in runs/demo/logs/)", flush=True)
    train_pairs()
    model = {name: f"runs/{name}/export/generator.safetensors" for name in TRAININGS}

    print("\n2. Each against its baseline", flush=True)
    set5 = SHARED / "benchmarks" / "Set5"
    hr = set5 / "x2" / "HR" if set5.exists() else "skimage:val"
    sh("evaluate.py", f"ckpt={model['demo_restore']}", f"hr_dir={hr}", f"out_dir={OUT / 'eval_restore'}", "lpips=false")
    sh("evaluate.py", f"ckpt={model['demo_colorize']}", f"hr_dir={hr}", f"out_dir={OUT / 'eval_colorize'}",
       "lpips=false", "task=colorize", "task.fid=false")
    if set5.exists():
        sh("evaluate.py", f"ckpt={model['demo_sr']}", f"hr_dir={hr}", f"lr_dir={set5 / 'x2' / 'LR'}",
           f"out_dir={OUT / 'eval_sr'}", "lpips=false")
    else:
        print("\n(../shared/data absent: the x2 model is scored on the held-out scikit-image photos)")
        from restoregan.data.datasets import skimage_photos

        folder = ROOT / OUT / "heldout_hr"
        folder.mkdir(parents=True, exist_ok=True)
        for p in skimage_photos("val"):
            (folder / Path(p).name).write_bytes(Path(p).read_bytes())
        sh("evaluate.py", f"ckpt={model['demo_sr']}", f"hr_dir={folder}", f"out_dir={OUT / 'eval_sr'}",
           "lpips=false")
    frames = SHARED / "footage" / "old_film_frames_001"
    clip = CLIP if CLIP.exists() else sample_clip()
    sh("evaluate.py", f"ckpt={model['demo_interp']}", f"input={frames if frames.exists() else clip}",
       f"out_dir={OUT / 'eval_interp'}", "lpips=false")

    print("\n3. The film pipeline over the first frames of a real newsreel", flush=True)
    film = OUT / f"{clip.stem}_restored.mp4"
    sh("infer.py", "pipeline=film", f"input={clip}", f"output={film}", f"video.max_frames={CLIP_FRAMES}",
       "video.side_by_side=true", "video.resume=false",
       *[f"stages.{stage}.ckpt={model[name]}" for stage, name in
         (("restore", "demo_restore"), ("colorize", "demo_colorize"), ("upscale", "demo_sr"), ("interpolate", "demo_interp"))])
    sh("evaluate.py", f"input={clip}", f"result={film}", f"temporal.max_frames={CLIP_FRAMES}",
       f"out_dir={OUT / 'eval_temporal'}")

    print(
        f"\nDemo finished in {(time.time() - start) / 60:.1f} min.\n"
        f"  trained models:  runs/demo_{{restore,colorize,sr,interp}}/export/generator.safetensors (+ .yaml;\n"
        f"                   validation grids in runs/demo_*/images/)\n"
        f"  scores:          {OUT}/eval_{{restore,colorize,sr,interp}}/metrics.md (+ metrics.json, comparison.png)\n"
        f"  restored film:   {film} (x2 size, x2 frame rate), {OUT / (clip.stem + '_restored_side_by_side.mp4')},\n"
        f"                   {OUT / (clip.stem + '_restored_contact.png')}\n"
        f"  its flicker:     {OUT}/eval_temporal/metrics.md (+ comparison.png: per frame, input vs result)"
    )


if __name__ == "__main__":
    main()
