#!/usr/bin/env bash
# The GPU benches in one go (`make bench-gpu`), -> bench/results/gpu/:
#   training.json        training it/s of every full experiment at its own batch and patch size, bf16 + channels_last
#   pipeline_1080p.json  frames/s of each film-pipeline stage on the newsreel's frames resized to 1920x1080
#   ddp.json             only with 2+ GPUs: wall time of sr_quickstart trained by 1 process and by 2 DDP processes
# Refuses in one line where torch sees no CUDA device. Each step runs even if an earlier one failed; the script
# exits non-zero if any did. PYTHON=python to use another interpreter than .venv's.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=bench/results/gpu

if ! command -v "$PYTHON" >/dev/null; then
    echo "bench/gpu.sh: no Python at $PYTHON (run make setup, or set PYTHON=...)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA device (torch.cuda.is_available() is False); nothing run" >&2
    exit 1
fi
mkdir -p "$OUT"
failed=()

step() {  # step NAME COMMAND...: run it, remember a failure, go on
    local name=$1
    shift
    echo "=== $name: $*"
    if ! "$@"; then
        echo "=== $name: FAILED" >&2
        failed+=("$name")
    fi
}

step training "$PYTHON" bench/perf_training.py --device cuda --bf16 --channels-last --out "$OUT/training.json" \
    srgan_x4 esrgan_x4 realesrgan_x4 colorize interp film_restore
step pipeline_1080p "$PYTHON" bench/pipeline_speed.py --device cuda --size 1920x1080 --frames 16 --pipeline-frames 0 \
    --bf16 --channels-last --out "$OUT/pipeline_1080p.json"

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
if [ "$gpus" -ge 2 ]; then
    ddp() {  # ddp DEVICES: wall seconds of a short sr_quickstart run on that many GPUs, DDP
        local start=$SECONDS
        "$PYTHON" train.py experiment=sr_quickstart name="bench_gpu_ddp_$1" overwrite=true logger=csv \
            trainer=ddp trainer.accelerator=gpu trainer.devices="$1" trainer.precision=bf16-mixed \
            model.channels_last=true pretrain_iters=300 gan_iters=300 val_every=100000 >&2 || return 1
        echo $((SECONDS - start))
    }
    if one=$(ddp 1) && two=$(ddp 2); then
        "$PYTHON" - "$one" "$two" "$OUT/ddp.json" <<'EOF'
import json, sys
from pathlib import Path
from restoregan.atomic import atomic_write
one, two, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
text = json.dumps({"experiment": "sr_quickstart", "iterations": 600, "precision": "bf16-mixed", "channels_last": True,
           "per_process_batch": "the experiment's own (2 processes: twice the samples per iteration)",
           "wall_seconds_1_gpu": one, "wall_seconds_2_gpus_ddp": two,
           "note": "whole train.py runs, start-up and export included"}, indent=2)
atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text + "\n"))
print(f"ddp: 1 GPU {one} s, 2 GPUs {two} s")
EOF
    else
        failed+=(ddp)
    fi
else
    echo "=== ddp: skipped ($gpus GPU; needs 2)"
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "bench/gpu.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "bench/gpu.sh: wrote $OUT/"
