"""Bench: train `sr_quickstart` on its default data (CPU), then benchmark it on Set5/Set14 x4 against bicubic.

python bench/sr_quickstart.py [extra train.py overrides]   -> bench/results/sr_quickstart.json
The bars: at most 20 minutes of training on a 2-core CPU and at least +2.3 dB PSNR-Y over bicubic on Set5 x4
(issue 17; FSRCNN's figure), with Set14 and BSD100 beside it. The training photos never include those sets (the
quickstart trains on the scikit-image photos and the ImageNet sample without its every-10th hold-out).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from training import machine

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "data" / "benchmarks"
OUT = ROOT / "bench" / "results"
RUN = ROOT / "runs" / "bench_sr_quickstart"


def run(args: list[str]) -> None:
    print("$ python " + " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main() -> None:
    extra = sys.argv[1:]
    train_args = ["train.py", "experiment=sr_quickstart", "name=bench_sr_quickstart", "overwrite=true", "logger=csv", *extra]
    start = time.time()
    run(train_args)
    train_minutes = (time.time() - start) / 60
    model = RUN / "export" / "generator.safetensors"
    results: dict = {
        "command": "python " + " ".join(train_args),
        "train_wall_minutes": round(train_minutes, 2),
        "machine": machine(),
        "datasets": {},
    }
    for name in ("Set5", "Set14", "BSD100"):
        root = BENCH / name / "x4"
        if not root.exists():
            print(f"skipping {name}: {root} not found")
            continue
        out = RUN / f"eval_{name}"
        # the export says its task (x4 SR); metrics.json's psnr/ssim are PSNR-Y/SSIM-Y with a 4-pixel border crop
        run(["evaluate.py", f"ckpt={model}", f"hr_dir={root / 'HR'}", f"lr_dir={root / 'LR'}", f"out_dir={out}"])
        metrics = json.loads((out / "metrics.json").read_text())["methods"]
        ours, bicubic = metrics["generator"], metrics["bicubic"]
        results["datasets"][name] = {
            "bicubic": {"psnr_y": bicubic["psnr"], "ssim_y": bicubic["ssim"]},
            "sr_quickstart": {"psnr_y": ours["psnr"], "ssim_y": ours["ssim"]},
            "psnr_gain_db": round(ours["psnr"] - bicubic["psnr"], 3),
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sr_quickstart.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
