"""Temporal-consistency report behind `evaluate.py input=... result=...`: how much a processed video flickers
relative to its input (restoregan.metrics.temporal for the measure). No model runs, so no task is involved.

    python evaluate.py input=reel.mp4 result=restored.mp4 out_dir=DIR [temporal.max_frames=100]

The result may have another size (it is resized onto the input's grid) or frame rate (each input frame is
paired with the result frame at the same presentation time; frame folders by index: N, k N or k (N - 1) + 1
frames). Fidelity to the input's structure is measured alongside (restoregan.metrics.fidelity), since a black,
blurred or time-averaged result has no flicker at all: the verdict says "flicker reduced" only when both hold.
Writes metrics.json, metrics.md and comparison.png (warping error per frame pair, gradient SSIM per frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from restoregan.data.video import Frame, SceneCutDetector, VideoInfo, VideoReadError, iter_frames, probe
from restoregan.evaluation.report import write_report
from restoregan.metrics.fidelity import gradient_magnitude, gradient_ssim_map, tenengrad
from restoregan.metrics.temporal import PairWarp, resize_to

DEFINITION = (
    "warp_error: mean |frame_t - warp(frame_(t-1))| over pixels that pass a forward-backward flow check, RGB, "
    "8-bit levels; the flow (Farneback) is estimated on the input and applied to both videos; relative = "
    "result / input (> 1: flicker introduced, < 1: removed); pairs across scene cuts skipped. "
    "Fidelity (on the luma smoothed by fidelity.sigma px, 3x3 Sobel gradients): gradient_ssim = SSIM of the "
    "result's gradient magnitudes against the input's (per frame, data range the input's peak gradient; 1 = same "
    "edges, a brightness change costs nothing); sharpness_ratio = Tenengrad (mean squared gradient) of the result "
    "/ the input's; moving_gradient_ssim = gradient_ssim over the pixels where the input's own flow moves at least "
    "fidelity.motion_px (temporal averaging smears these). Verdict 'flicker reduced' only when relative < 1 and "
    "all three reach their thresholds"
)

# the fidelity thresholds' defaults, as conf/evaluate.yaml documents them (for configs built without the block)
FIDELITY_DEFAULTS = {"sigma": 1.0, "motion_px": 1.0, "min_gradient_ssim": 0.7, "min_sharpness": 0.5,
                     "min_moving_ssim": 0.7}
CHECKS = (  # (key in report["fidelity"], threshold option, label in the verdict)
    ("gradient_ssim", "min_gradient_ssim", "gradient SSIM"),
    ("sharpness_ratio", "min_sharpness", "sharpness ratio"),
    ("moving_gradient_ssim", "min_moving_ssim", "gradient SSIM where the input moves"),
)


def fidelity_options(tcfg: DictConfig) -> dict:
    opts = {**FIDELITY_DEFAULTS, **dict(tcfg.get("fidelity") or {})}
    for key, value in opts.items():
        if key not in FIDELITY_DEFAULTS:
            raise ValueError(f"temporal.fidelity.{key}: unknown option (known: {', '.join(FIDELITY_DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"temporal.fidelity.{key} must be a number >= 0, got {value!r}")
    return {k: float(v) for k, v in opts.items()}


def _times(info: VideoInfo, frame: Frame) -> Fraction | None:
    if info.is_folder or frame.pts is None or info.time_base is None:
        return None
    return frame.pts * info.time_base


def _index_step(n_in: int, n_out: int, result: Path) -> int:
    """Frames of a result without timestamps: every k-th one lines up with an input frame."""
    for k in range(1, 17):
        if n_out in (k * n_in, k * (n_in - 1) + 1):
            return k
    raise VideoReadError(f"{result}: {n_out} frames do not line up with the input's {n_in} "
                         "(expected N, k N or k (N - 1) + 1 frames, or a video with timestamps)")


def aligned(source: Path, result: Path) -> Iterator[tuple[Frame, np.ndarray]]:
    """(input frame, result frame at the same time on the input's grid), streaming both. Whether the two
    can be paired at all is checked here, before any frame is decoded."""
    info_in, info_out = probe(source), probe(result)
    if not info_in.is_folder and not info_out.is_folder and info_in.time_base and info_out.time_base:
        return _by_time(source, result, info_in, info_out)
    if not info_in.frames or not info_out.frames:
        raise VideoReadError(f"{result}: frame counts unknown, cannot pair frames with {source}")
    k = _index_step(info_in.frames, info_out.frames, result)
    return ((f, resize_to(out.image, f.image.shape[:2]))
            for f, out in zip(iter_frames(source), islice(iter_frames(result), 0, None, k)))


def _by_time(source: Path, result: Path, info_in: VideoInfo, info_out: VideoInfo) -> Iterator[tuple[Frame, np.ndarray]]:
    frames_out = iter_frames(result)
    pending = next(frames_out, None)
    slack = 1 / (2 * info_in.fps) if info_in.fps else None  # half an input frame interval
    for frame in iter_frames(source):
        when = _times(info_in, frame)
        best = None
        # advance to the result frame nearest `when` (results are in presentation order)
        while pending is not None:
            t = _times(info_out, pending)
            if best is not None and abs(t - when) >= abs(_times(info_out, best) - when):
                break
            best, pending = pending, next(frames_out, None)
        if best is None or (slack is not None and abs(_times(info_out, best) - when) > slack):
            raise VideoReadError(f"{result}: no frame at the time of the input's frame {frame.index} "
                                 f"({float(when):.3f} s); is it a result of this input?")
        yield frame, resize_to(best.image, frame.image.shape[:2])
        pending = best if pending is None else pending  # the last result frame may serve a repeated time


def evaluate_temporal(cfg: DictConfig) -> dict:
    tcfg = cfg.temporal
    fid = fidelity_options(tcfg)
    source, result, out_dir = Path(cfg.input), Path(cfg.result), Path(cfg.out_dir)
    if source.resolve() == result.resolve():
        raise ValueError(f"{result}: the result is the input itself")
    detector = SceneCutDetector(tcfg.scene_cut.hist_threshold, tcfg.scene_cut.diff_threshold)
    pairs = islice(aligned(source, result), tcfg.max_frames)
    rows, frames, cuts, prev = [], [], [], None
    moving_sum, moving_count, moving_total = 0.0, 0, 0
    total = probe(source).frames or None
    total = min(total, tcfg.max_frames) if total and tcfg.max_frames else total
    for frame, out in tqdm(pairs, total=total, desc="temporal consistency", unit="frame"):
        g_in, g_out = gradient_magnitude(frame.image, fid["sigma"]), gradient_magnitude(out, fid["sigma"])
        ssim = gradient_ssim_map(g_in, g_out)
        frames.append({"frame": frame.name, "index": frame.index, "gradient_ssim": float(ssim.mean()),
                       "tenengrad_input": tenengrad(g_in), "tenengrad_result": tenengrad(g_out)})
        if prev is not None:
            (p_frame, p_out) = prev
            if detector.is_cut(p_frame.image, frame.image):
                cuts.append(frame.index)
            else:
                warp = PairWarp.between(p_frame.image, frame.image)
                e_in, e_out = warp.error(p_frame.image, frame.image), warp.error(p_out, out)
                if e_in is not None:
                    rows.append({"frame": frame.name, "index": frame.index, "input": e_in, "result": e_out,
                                 "valid_fraction": float(warp.valid.mean())})
                moving = warp.moving(fid["motion_px"])
                moving_sum += float(ssim[moving].sum())
                moving_count += int(moving.sum())
                moving_total += moving.size
        prev = (frame, out)
    if not rows:
        raise VideoReadError(f"{source}: no consecutive frame pair to measure (fewer than 2 frames, or all cut)")
    mean_in = float(np.mean([r["input"] for r in rows]))
    mean_out = float(np.mean([r["result"] for r in rows]))
    sharp_in = float(np.mean([f["tenengrad_input"] for f in frames]))
    sharp_out = float(np.mean([f["tenengrad_result"] for f in frames]))
    fidelity = {
        "gradient_ssim": float(np.mean([f["gradient_ssim"] for f in frames])),
        "sharpness_ratio": sharp_out / sharp_in if sharp_in > 0 else None,
        "moving_gradient_ssim": moving_sum / moving_count if moving_count else None,
        "moving_fraction": moving_count / moving_total if moving_total else 0.0,
        "tenengrad": {"input": sharp_in, "result": sharp_out},
        "options": fid,
        "images": [{"frame": f["frame"], "gradient_ssim": f["gradient_ssim"]} for f in frames],
    }
    report = {
        "task": "temporal",
        "dataset": cfg.dataset or source.stem,
        "input": str(source),
        "result": str(result),
        "pairs": len(rows),
        "scene_cuts": cuts,
        "definition": DEFINITION,
        "methods": {
            "input": {"warp_error": mean_in, "images": [{"frame": r["frame"], "warp_error": r["input"]} for r in rows]},
            "result": {"warp_error": mean_out, "images": [{"frame": r["frame"], "warp_error": r["result"]} for r in rows]},
        },
        "relative": mean_out / mean_in if mean_in > 0 else None,
        "valid_fraction": float(np.mean([r["valid_fraction"] for r in rows])),
        "fidelity": fidelity,
    }
    report["checks"], report["verdict"] = verdict(report["relative"], fidelity, fid)
    report["flicker_reduced"] = report["verdict"] == "flicker reduced"
    write_report(out_dir, report, markdown(report), lambda tmp: plot(rows, frames, report, tmp), [source, result])
    return report


def verdict(rel: float | None, fidelity: dict, fid: dict) -> tuple[list[dict], str]:
    """Each fidelity check (value, threshold, passed; passed None when it cannot apply: no motion, flat input)
    and the verdict: 'flicker reduced' only when the warp error fell AND every applicable check holds;
    otherwise the failing checks, by name and figure."""
    checks = []
    for key, option, label in CHECKS:
        value = fidelity[key]
        checks.append({"check": key, "label": label, "value": value, "threshold": fid[option],
                       "passed": None if value is None else bool(value >= fid[option])})
    failed = [f"{c['label']} {c['value']:.3f} < {c['threshold']:g}" for c in checks if c["passed"] is False]
    rel_text = "n/a" if rel is None else f"{rel:.3f}"
    if failed:
        return checks, f"fidelity failed: {'; '.join(failed)} (relative warp error {rel_text} not credited)"
    if rel is None:
        return checks, "n/a: the input's warp error is 0 (nothing to compare)"
    if rel < 1:
        return checks, "flicker reduced"
    return checks, "flicker added" if rel > 1 else "flicker unchanged"


def markdown(report: dict) -> str:
    rel, fidelity = report["relative"], report["fidelity"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"### {report['dataset']}: temporal consistency ({report['pairs']} frame pairs, "
             f"scene cuts at {report['scene_cuts'] or 'none'})", "",
             f"**Verdict: {report['verdict']}**", "",
             "| video | warp error (8-bit levels) |", "| --- | ---: |"]
    for name, m in report["methods"].items():
        lines.append(f"| {name} | {m['warp_error']:.3f} |")
    lines += ["", f"relative (result / input): {fmt(rel)}", "",
              "| fidelity check | value | threshold | |", "| --- | ---: | ---: | --- |"]
    for c in report["checks"]:
        state = {True: "pass", False: "**fail**", None: "not applicable"}[c["passed"]]
        lines.append(f"| {c['label']} | {fmt(c['value'])} | >= {c['threshold']:g} | {state} |")
    lines += ["", f"Pixels moving at least {fidelity['options']['motion_px']:g} px per frame: "
                  f"{100 * fidelity['moving_fraction']:.1f}%", "", f"Definition: {report['definition']}"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], frames: list[dict], report: dict, path: str | Path) -> None:
    """Warping error per frame pair, input and result, and the gradient SSIM per frame: where a model flickers
    or loses the picture is easier seen than read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5), dpi=100, sharex=True, height_ratios=(2, 1))
    x = [r["index"] for r in rows]
    ax.plot(x, [r["input"] for r in rows], label=f"input ({report['methods']['input']['warp_error']:.2f})", lw=1)
    ax.plot(x, [r["result"] for r in rows], label=f"result ({report['methods']['result']['warp_error']:.2f})", lw=1)
    for c in report["scene_cuts"]:
        ax.axvline(c, color="grey", ls=":", lw=1)
    ax.set_ylabel("warp error (8-bit levels)")
    ax.set_title(f"{report['dataset']}: temporal consistency (dotted: scene cuts); {report['verdict']}",
                 fontsize=9, wrap=True)
    ax.legend(fontsize=8)
    ax2.plot([f["index"] for f in frames], [f["gradient_ssim"] for f in frames], color="tab:green", lw=1)
    ax2.axhline(report["fidelity"]["options"]["min_gradient_ssim"], color="tab:red", ls="--", lw=1)
    ax2.set_ylim(min(0.0, ax2.get_ylim()[0]), 1.05)
    ax2.set_ylabel("gradient SSIM", fontsize=8)
    ax2.set_xlabel("input frame")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
