"""`make bench`: run every performance bench, each in its own process (so one's memory and threads do not colour
the next, and a failure is reported without losing the others), then write the summary.

python bench/perf.py [--only training,data,inference,flops,pipeline] [--summary-only]
-> bench/results/perf/<bench>.json, one per bench, and bench/results/perf/SUMMARY.md
Budget: 15 minutes on the reference 2-core CPU; each bench states its share. BENCH_QUICK=1 runs each in seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import RESULTS, ROOT  # noqa: E402
from perf_summary import write_summary  # noqa: E402

BENCHES = {"training": "perf_training.py", "data": "perf_data.py", "inference": "perf_inference.py",
           "flops": "perf_flops.py", "pipeline": "perf_pipeline.py"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset of " + ", ".join(BENCHES))
    parser.add_argument("--summary-only", action="store_true", help="rewrite SUMMARY.md from the existing JSONs")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {unknown}; choose from {sorted(BENCHES)}")
    failed, wall = [], {}
    if not args.summary_only:
        for name in names:
            print(f"\n=== bench/{BENCHES[name]} ===", flush=True)
            start = time.time()
            rc = subprocess.run([sys.executable, str(ROOT / "bench" / BENCHES[name])], cwd=ROOT).returncode
            wall[name] = round(time.time() - start, 1)
            print(f"=== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {wall[name]:.0f} s", flush=True)
            if rc != 0:
                failed.append(name)
        timings = RESULTS / "run_times.json"
        previous = json.loads(timings.read_text()) if timings.exists() else {}
        timings.parent.mkdir(parents=True, exist_ok=True)
        timings.write_text(json.dumps({**previous, **wall}, indent=2) + "\n")
    path = write_summary()
    print(f"\nwrote {path.relative_to(ROOT)}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
