"""Temporal-consistency report behind `evaluate.py input=... result=...`: how much a processed video flickers
relative to its input (restoregan.metrics.temporal for the measure). No model runs, so no task is involved.

    python evaluate.py input=reel.mp4 result=restored.mp4 out_dir=DIR [temporal.max_frames=100]

The result may have another size (it is resized onto the input's grid) or frame rate (each input frame is
paired with the result frame at the same presentation time; frame folders by index: N, k N or k (N - 1) + 1
frames). Writes metrics.json, metrics.md and comparison.png (warping error per frame, input and result).
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
from restoregan.metrics.temporal import PairWarp, resize_to

DEFINITION = (
    "warp_error: mean |frame_t - warp(frame_(t-1))| over pixels that pass a forward-backward flow check, RGB, "
    "8-bit levels; the flow (Farneback) is estimated on the input and applied to both videos; relative = "
    "result / input (> 1: flicker introduced, < 1: removed); pairs across scene cuts skipped"
)


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
    source, result, out_dir = Path(cfg.input), Path(cfg.result), Path(cfg.out_dir)
    if source.resolve() == result.resolve():
        raise ValueError(f"{result}: the result is the input itself")
    detector = SceneCutDetector(tcfg.scene_cut.hist_threshold, tcfg.scene_cut.diff_threshold)
    pairs = islice(aligned(source, result), tcfg.max_frames)
    rows, cuts, prev = [], [], None
    total = probe(source).frames or None
    total = min(total, tcfg.max_frames) if total and tcfg.max_frames else total
    for frame, out in tqdm(pairs, total=total, desc="temporal consistency", unit="frame"):
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
        prev = (frame, out)
    if not rows:
        raise VideoReadError(f"{source}: no consecutive frame pair to measure (fewer than 2 frames, or all cut)")
    mean_in = float(np.mean([r["input"] for r in rows]))
    mean_out = float(np.mean([r["result"] for r in rows]))
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
    }
    write_report(out_dir, report, markdown(report), lambda tmp: plot(rows, report, tmp), [source, result])
    return report


def markdown(report: dict) -> str:
    rel = report["relative"]
    verdict = "n/a" if rel is None else ("flicker added" if rel > 1 else "flicker removed")
    lines = [f"### {report['dataset']}: temporal consistency ({report['pairs']} frame pairs, "
             f"scene cuts at {report['scene_cuts'] or 'none'})", "",
             "| video | warp error (8-bit levels) |", "| --- | ---: |"]
    for name, m in report["methods"].items():
        lines.append(f"| {name} | {m['warp_error']:.3f} |")
    lines += ["", f"relative (result / input): {'n/a' if rel is None else f'{rel:.3f}'} ({verdict})", "",
              f"Definition: {report['definition']}"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], report: dict, path: str | Path) -> None:
    """Warping error per frame pair, input and result: where a model flickers is easier seen than read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    x = [r["index"] for r in rows]
    ax.plot(x, [r["input"] for r in rows], label=f"input ({report['methods']['input']['warp_error']:.2f})", lw=1)
    ax.plot(x, [r["result"] for r in rows], label=f"result ({report['methods']['result']['warp_error']:.2f})", lw=1)
    for c in report["scene_cuts"]:
        ax.axvline(c, color="grey", ls=":", lw=1)
    ax.set_xlabel("input frame")
    ax.set_ylabel("warp error (8-bit levels)")
    ax.set_title(f"{report['dataset']}: temporal consistency (dotted: scene cuts)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
