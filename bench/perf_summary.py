"""SUMMARY.md from the perf benches' JSONs (bench/results/perf/*.json): one table per bench, every figure the
issue asks for named, and a verdict line for each bar (framework overhead, spandrel ratio, loader keeps up)."""

from __future__ import annotations

import json
from pathlib import Path

from perf_common import RESULTS

from restoregan.atomic import atomic_write


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(x: object, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _header(result: dict) -> str:
    m = result.get("machine", {})
    return (f"device {result.get('device')}, {m.get('cpus')} CPUs, torch {m.get('torch')}, "
            f"{result.get('torch_threads')} threads, load average {m.get('load_average')}"
            + (" (BENCH_QUICK: indicative only)" if result.get("quick") else ""))


def training_section(r: dict) -> list[str]:
    lines = ["## Training (bench/perf_training.py)", "", _header(r), "",
             "Iterations/s (one batch: a G step, or a D and a G step in the GAN phase), framework (Lightning + "
             "GANModule) and, for the quickstarts, overhead against a plain PyTorch loop of the same networks, "
             "losses, optimizers and EMA: framework and plain loop alternate (ABAB), each pair gives one overhead; "
             "the median over pairs, their min / max, and the spread (max - min, percentage points). Peak memory "
             "of the framework run.", "",
             "| config | batch x patch | phase | it/s | s/it | overhead vs plain loop (median) | min / max | "
             "spread (points) | peak MiB | process peak RSS MiB |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    worst = widest = None  # (value, "config phase")
    repeats = set()
    for name, c in r["configs"].items():
        if "error" in c:
            lines.append(f"| {name} | | | failed: {c['error']} | | | | | | |")
            continue
        for phase, p in c["phases"].items():
            ov, stats = p.get("framework_overhead_percent"), p.get("overhead") or {}
            if ov is not None and (worst is None or ov > worst[0]):
                worst = (ov, f"{name} {phase}")
            spread = stats.get("spread_points")
            if spread is not None and (widest is None or spread > widest[0]):
                widest = (spread, f"{name} {phase}")
            if stats:
                repeats.add(stats.get("repeats"))
            range_text = f"{stats['min_percent']:+.1f}% / {stats['max_percent']:+.1f}%" if stats else ""
            lines.append(f"| {name} | {c['batch_size']} x {c['crop_size']} | {phase} | "
                         f"{_fmt(p['framework_iterations_per_s'])} | {_fmt(p['framework_seconds_per_iteration'], 3)} | "
                         f"{'' if ov is None else f'{ov:+.1f}%'} | {range_text} | "
                         f"{'' if spread is None else f'{spread:.1f}'} | {_fmt(p['peak_mib'], 0)} | "
                         f"{_fmt(c.get('process_peak_rss_mib'), 0)} |")
    if r.get("cpu_full_experiment_size"):
        s = r["cpu_full_experiment_size"]
        lines += ["", f"Full experiments on CPU at batch {s['batch_size']} of {s['crop_size']} px patches "
                      "(their real sizes are GPU work); quickstarts at their own sizes."]
    if worst is not None:
        verdict = "meets" if worst[0] <= 5 else "MISSES"
        pairs = f", median of {'/'.join(map(str, sorted(repeats)))} pairs" if repeats else ""
        lines += ["", f"**Framework overhead (worst quickstart phase median: {worst[1]}{pairs}): {worst[0]:+.1f}%**: "
                      f"{verdict} the 5% bar."]
    if widest is not None:
        under = "under" if widest[0] < 2 else "NOT under"
        lines += ["", f"**Overhead spread (widest, {widest[1]}): {widest[0]:.1f} points**: {under} the 2-point "
                      "target" + ("." if widest[0] < 2 else ": the pairs disagree by more than that.")]
    sw = r.get("switches_on_sr_quickstart") or {}
    if sw:
        lines += ["", "Training switches on sr_quickstart (generator pretraining), speed-up on/off:", "",
                  "| switch | off s/it | on s/it | speed-up |", "| --- | ---: | ---: | ---: |"]
        for k, v in sw.items():
            lines.append(f"| {k} | {_fmt(v.get('off_seconds_per_iteration'), 3)} | "
                         f"{_fmt(v.get('on_seconds_per_iteration'), 3)} | {_fmt(v.get('speedup'))}"
                         f"{' (' + v['error'] + ')' if v.get('error') else ''} |")
    return lines


def data_section(r: dict) -> list[str]:
    lines = ["## Data (bench/perf_data.py)", "", _header(r), "", f"Threads per worker: {r.get('threads_per_worker')}.",
             "", "Degradation patches/s per worker (one process, one thread), at the experiments' patch sizes:", "",
             "| pipeline | config | patch px | patches/s | peak MiB |", "| --- | --- | ---: | ---: | ---: |"]
    for name, d in r.get("degradation", {}).items():
        lines.append(f"| {name} | {d.get('config')} | {d.get('patch_px')} | {_fmt(d.get('patches_per_s'), 0)} | "
                     f"{_fmt(d.get('peak_mib'), 1)} |")
    lines += ["", "Against a straightforward per-image numpy/OpenCV version (ours / reference, alternating rounds):", "",
              "| pipeline | ours patches/s | reference patches/s | ours / reference | reference |",
              "| --- | ---: | ---: | ---: | --- |"]
    for name, d in r.get("reference", {}).items():
        lines.append(f"| {name} | {_fmt(d.get('ours_patches_per_s'), 0)} | {_fmt(d.get('reference_patches_per_s'), 0)} | "
                     f"{_fmt(d.get('ours_over_reference'))} | {d.get('reference', '')} |")
    lines += ["", "Data-side speed-ups, on vs off:", "", "| change | on patches/s | off patches/s | speed-up |",
              "| --- | ---: | ---: | ---: |"]
    for name, d in r.get("speedups", {}).items():
        lines.append(f"| {name}: {d.get('what', '')} | {_fmt(d.get('on_patches_per_s'), 0)} | "
                     f"{_fmt(d.get('off_patches_per_s'), 0)} | {_fmt(d.get('speedup'))} |")
    lines += ["", "Loader (batches from the config's own datamodule) against the training step (generator pretraining, "
                  "the shorter step); `wait` = share of each iteration spent waiting for data while 2 workers feed a "
                  "training loop in the same process (the verdict).", "",
              "| config | batch x patch | s/batch 0 / 1 / 2 workers | step s | loader / step (2 workers) | wait | "
              "pinned memory | keeps up |", "| --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for name, d in r.get("loader", {}).items():
        w = d.get("workers", {})
        per = " / ".join(_fmt((w.get(k) or w.get(int(k)) or {}).get("seconds_per_batch"), 4) for k in ("0", "1", "2"))
        pin = d.get("pin_memory_2_workers", {})
        pin_text = pin.get("reason") if pin.get("true") is None else f"{pin.get('true')} vs {pin.get('false')} s/batch"
        lines.append(f"| {name} | {d.get('batch_size')} x {d.get('crop_px')} | {per} | "
                     f"{_fmt(d.get('step', {}).get('pretrain_seconds_per_step'), 3)} | "
                     f"{_fmt(d.get('loader_seconds_per_batch_over_step_seconds', {}).get('workers_2'), 3)} | "
                     f"{_fmt(100 * d.get('with_training', {}).get('data_wait_fraction', float('nan')), 1)}% | "
                     f"{pin_text} | {'yes' if d.get('keeps_up') else '**no**'} |")
    if r.get("verdict"):
        lines += ["", f"Verdict: {r['verdict']}"]
    return lines


def inference_section(r: dict) -> list[str]:
    inp, peak = r.get("input", {}), r.get("matmul_peak", {})
    f32 = peak.get("float32", {})
    lines = ["## Inference (bench/perf_inference.py)", "", _header(r), "", inp.get("note", ""), "",
             f"Peak float32 throughput of this machine: torch.mm {_fmt(f32.get('mm_gflop_per_s'), 0)} GFLOP/s, a dense "
             f"3x3 convolution {_fmt(f32.get('conv3x3_gflop_per_s'), 0)} GFLOP/s; the larger is the peak below "
             f"(bfloat16: {_fmt(peak.get('bfloat16', {}).get('gflop_per_s'), 0)}).", "",
             "| generator | params M | frames/s at 480p | s/frame | peak MiB at 480p | GFLOP/frame | achieved GFLOP/s | "
             "of peak | how |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, g in r.get("generators", {}).items():
        how = "whole frames"
        if g.get("extrapolated"):
            lin = g.get("linearity", {})
            how = (f"extrapolated from a {'x'.join(map(str, g['timed_shape']))} crop (time/pixel "
                   f"{_fmt(lin.get('time_ratio_over_pixel_ratio'))}x the smaller crop's)")
        frac = g.get("fraction_of_matmul_peak")
        lines.append(f"| {name} | {_fmt(g.get('params_m'), 1)} | {_fmt(g.get('frames_per_s'), 3)} | "
                     f"{_fmt(g.get('seconds_per_frame'), 1)} | {_fmt(g.get('peak_mib_480p'), 0)} | "
                     f"{_fmt(g.get('gflop_per_frame'), 0)} | {_fmt(g.get('achieved_gflop_per_s'), 0)} | "
                     f"{'n/a' if frac is None else f'{100 * frac:.0f}%'} | {how} |")
    sp = r.get("spandrel") or {}
    if sp.get("ratio_ours_over_spandrel") is not None:
        ratio = sp["ratio_ours_over_spandrel"]
        verdict = "meets" if ratio <= 1.03 else "MISSES"  # 3%: the run-to-run spread of one timing here
        same = "bit-identical" if sp.get("bit_identical") else f"max |diff| {sp.get('max_abs_diff')}"
        shape = "x".join(map(str, sp.get("input_shape", [])))
        lines += ["", f"**RRDBNet against spandrel {sp.get('spandrel_version')} on the same weights** ({shape} input): "
                      f"ours {_fmt(sp.get('ours_seconds_per_call'), 3)} s, spandrel "
                      f"{_fmt(sp.get('spandrel_seconds_per_call'), 3)} s per call; ours takes {ratio:.3f}x spandrel's "
                      f"time ({verdict} 'at least as fast', with 3% timing tolerance); outputs {same}; with "
                      f"channels_last ours takes {_fmt(sp.get('ratio_ours_channels_last_over_spandrel'), 3)}x."]
    lines += ["", "Inference switches, on vs off (speed-up > 1 = faster; details and output differences in "
                  "inference.json):", ""]
    skip = (*r.get("generators", {}), "RRDBNet ours/spandrel")  # already in the tables above
    lines += [f"- {line}" for line in r.get("summary", []) if not line.startswith(skip)
              or line.startswith(("channels_last", "inference_mode"))]
    where = r.get("switches", {}).get("where_they_apply")
    if where:
        lines += ["", "Where each applies: " + "; ".join(f"{k}: {v}" for k, v in where.items()) + "."]
    return lines


def flops_section(r: dict) -> list[str]:
    peak, low, slow = r.get("peak", {}), r.get("lowest_fraction") or {}, r.get("slowest_stage")
    frame = r.get("pipeline_frame", {})
    lines = ["## Where the time goes (bench/perf_flops.py)", "", _header(r), "",
             f"Measured fp32 peak of this machine ({peak.get('threads')} threads): {peak.get('mm_n')}x{peak.get('mm_n')} "
             f"torch.mm {_fmt(peak.get('mm_gflop_per_s'), 1)} GFLOP/s, dense 3x3 convolution "
             f"{_fmt(peak.get('conv3x3_gflop_per_s'), 1)} GFLOP/s (best of 5 each); the faster is the peak. FLOPs: "
             f"{r.get('flop_counter', 'torch FlopCounterMode')}. Time: median forward under inference_mode. Film "
             f"stages at the newsreel's {frame.get('width')}x{frame.get('height')}, the others at the inference "
             "bench's size.", "",
             "| generator | film stage | timed HxW | GFLOP/call | s/call | achieved GFLOP/s | of peak | of torch.mm |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, g in r.get("generators", {}).items():
        lines.append(f"| {name} | {g.get('stage') or ''} | {'x'.join(map(str, g.get('timed_shape', [])))} | "
                     f"{_fmt(g.get('gflop_per_call'), 2)} | {_fmt(g.get('seconds_per_call'), 3)} | "
                     f"{_fmt(g.get('achieved_gflop_per_s'), 1)} | {100 * g.get('fraction_of_peak', float('nan')):.0f}% | "
                     f"{100 * g.get('fraction_of_mm_peak', float('nan')):.0f}% |")
    if slow:
        lines += ["", f"**Slowest film-pipeline stage: {slow['stage']}** ({slow['generator']}, "
                      f"{_fmt(slow.get('seconds_per_call'), 3)} s per frame, {100 * slow['fraction_of_peak']:.0f}% of "
                      "peak)."]
    if low:
        lines += ["", f"**Lowest fraction of peak: {low.get('generator')}**"
                      + (f" ({low['stage']} stage)" if low.get("stage") else "")
                      + f" at {100 * low.get('fraction_of_peak', float('nan')):.0f}%."]
    return lines


def pipeline_section(r: dict) -> list[str]:
    lines = ["## The film pipeline (bench/perf_pipeline.py)", "", _header(r), ""]
    if r.get("skipped"):
        return lines + [f"skipped: {r['skipped']}"]
    goal = r.get("goal", {})
    lines += [f"{' -> '.join(r.get('order', []))} over the first {r['runs'][0]['input_frames']} frames of "
              f"{r.get('clip')} (432x320 in; 864x640 at twice the frame rate out), as infer.py pipeline=film runs "
              "them; stand-in models: " + "; ".join(f"{k}: {v}" for k, v in r.get("models", {}).items()) + ". "
              f"Overhead: {r.get('definition')}.", "",
              "| overlap | wall s | input frames/s | forward s | overhead | forward s per generator |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for run in r.get("runs", []):
        per = ", ".join(f"{k} {v:.1f}" for k, v in run.get("forward_s_per_generator", {}).items())
        lines.append(f"| {'on' if run['overlap'] else 'off'} | {_fmt(run['wall_s'], 1)} | "
                     f"{_fmt(run['input_frames_per_s'], 2)} | {_fmt(run['forward_s'], 1)} | "
                     f"{100 * run['overhead']:.1f}% | {per} |")
    default = r.get("default", {})
    verdict = "meets" if r.get("meets_goal") else "MISSES"
    mode = f"video.overlap={'on' if default.get('overlap') else 'off'}, what auto picks here"
    lines += ["", f"**Pipeline with its defaults ({mode}): {_fmt(default.get('input_frames_per_s'), 2)} input frames/s, "
                  f"overhead {100 * default.get('overhead', float('nan')):.1f}%**: {verdict} the goal "
                  f"(at least {goal.get('input_frames_per_s')} frames/s, overhead under "
                  f"{100 * goal.get('overhead_below', float('nan')):.0f}%)."]
    if r.get("forward_only_input_frames_per_s"):
        lines += ["", f"The models' forward passes alone allow {_fmt(r['forward_only_input_frames_per_s'], 2)} input "
                      "frames/s here (frames / forward time of the runs without threads beside them)."]
    if "overlap_speedup" in r:
        lines += ["", f"video.overlap (decoding ahead and encoding in threads while the models run) on vs off: "
                      f"{r['overlap_speedup']:.2f}x."]
    return lines


SECTIONS = {"training": training_section, "data": data_section, "inference": inference_section,
            "flops": flops_section, "pipeline": pipeline_section}


def write_summary() -> Path:
    parts = ["# Performance summary", "",
             "Written by `make bench` (bench/perf.py). One JSON per bench beside this file holds every figure.", ""]
    times = RESULTS / "run_times.json"
    if times.exists():
        t = json.loads(times.read_text())
        parts += ["Bench wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items())
                  + f"; total {sum(t.values()) / 60:.1f} min.", ""]
    for name, section in SECTIONS.items():
        result = _load(name)
        parts += (section(result) if result else [f"## {name}", "", "not run (no JSON)."]) + [""]
    text = "\n".join(parts)
    return atomic_write(RESULTS / "SUMMARY.md", lambda tmp: Path(tmp).write_text(text))
