"""`make demo`: train the CPU-sized super-resolution GAN, benchmark it against bicubic, upscale images.

Runs the same three commands a user would type (printed before each), on data that needs no download:
the scikit-image photos for training, Set5 from ../shared/data for evaluation when present (else held-out
scikit-image photos), and the evaluation images for upscaling.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET5 = ROOT.parent / "shared" / "data" / "benchmarks" / "Set5" / "x4"
RUN = Path("runs/demo")

# Short enough for make demo's 15-minute budget on 2 CPU cores (setup included); bench/sr_quickstart.py
# trains the full quickstart schedule.
DEMO_ITERS = ["pretrain_iters=1200", "gan_iters=200", "val_every=350"]


def sh(*args: str) -> None:
    print(f"\n$ {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def main() -> None:
    start = time.time()
    sh("train.py", "experiment=sr_quickstart", "name=demo", "overwrite=true", *DEMO_ITERS)
    model = RUN / "export" / "generator.safetensors"

    if SET5.exists():
        hr, lr = SET5 / "HR", SET5 / "LR"
        sh("evaluate.py", f"ckpt={model}", f"hr_dir={hr}", f"lr_dir={lr}", "scale=4", f"out_dir={RUN / 'eval'}")
    else:
        print(f"\n{SET5} not found: evaluating on held-out scikit-image photos instead")
        from restoregan.data.datasets import skimage_photos

        hr = RUN / "heldout_hr"
        hr.mkdir(parents=True, exist_ok=True)
        for path in skimage_photos("val"):
            (hr / Path(path).name).write_bytes(Path(path).read_bytes())
        lr = None
        sh("evaluate.py", f"ckpt={model}", f"hr_dir={hr}", "scale=4", f"out_dir={RUN / 'eval'}")

    sh("infer.py", f"ckpt={model}", f"input={lr or hr}", f"output={RUN / 'upscaled'}")

    print(
        f"\nDemo finished in {(time.time() - start) / 60:.1f} min.\n"
        f"  trained model:   {RUN / 'export'}/generator.safetensors (+ .yaml); checkpoints in {RUN / 'checkpoints'}\n"
        f"  metrics table:   {RUN / 'eval'}/metrics.md (JSON: metrics.json; crops: comparison.png)\n"
        f"  upscaled images: {RUN / 'upscaled'}/\n"
        f"  training grids:  {RUN / 'images'}/"
    )


if __name__ == "__main__":
    main()
