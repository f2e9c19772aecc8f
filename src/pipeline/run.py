"""The film pipeline behind `python infer.py pipeline=film input=reel.mp4 output=restored.mp4`.

Stages run in `pipeline.order` (any subset of restore, colorize, upscale, interpolate; restore first when
present, each at most once), each with `stages.<name>.ckpt` or the newest export of its task under
`pipeline.runs_dir`. Input frames stream through in segments (restoregan.pipeline.segments), each stored
losslessly in `<output>.work/` so a killed run resumes from its last complete segment; when all are done they
are encoded once into the output (restoregan.pipeline.output), which appears only then. See docs/PIPELINE.md.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from restoregan.atomic import remove_stale_temps
from restoregan.data.video import SceneCutDetector, VideoInfo, VideoReadError, iter_frames, probe
from restoregan.evaluation.run import load_models
from restoregan.inference.tiled import prepare_for_inference, resolve_device
from restoregan.outputs import Inputs
from restoregan.pipeline.checkpoints import STAGE_TASKS, checkpoint_digest, file_digest, resolve_checkpoint
from restoregan.pipeline.output import assemble, output_format, sink_paths
from restoregan.pipeline.segments import Segment, WorkDir, run_chain, stage_windows
from restoregan.pipeline.stages import ColorizeStage, ImageStage, InterpolateStage, Item, Stage


def validate_order(order: list[str]) -> list[str]:
    """The stages to run, checked: known names, each once, restore first (it was trained on raw scans: grain
    and scratches should go before colour is guessed or detail is invented at a larger size)."""
    order = [str(name) for name in order]
    if not order:
        raise ValueError(f"pipeline.order is empty: name at least one of {', '.join(STAGE_TASKS)}")
    unknown = [name for name in order if name not in STAGE_TASKS]
    if unknown:
        raise ValueError(f"pipeline.order: unknown stage {unknown[0]!r}; stages are {', '.join(STAGE_TASKS)}")
    twice = sorted({name for name in order if order.count(name) > 1})
    if twice:
        raise ValueError(f"pipeline.order: stage {twice[0]!r} appears more than once")
    if "restore" in order and order[0] != "restore":
        raise ValueError(f"pipeline.order={order}: restore must come first (it removes the damage of the raw scan)")
    return order


def _interp_plan(scfg: DictConfig) -> tuple[int | None, Fraction | None]:
    if scfg.fps is not None:
        fps = Fraction(str(scfg.fps)).limit_denominator(1001)
        if fps <= 0:
            raise ValueError(f"stages.interpolate.fps={scfg.fps}: must be positive")
        return None, fps
    if int(scfg.factor) != scfg.factor or scfg.factor < 2:
        raise ValueError(f"stages.interpolate.factor={scfg.factor}: must be an integer >= 2 "
                         "(or set stages.interpolate.fps)")
    return int(scfg.factor), None


def build_stages(
    cfg: DictConfig, order: list[str], ckpts: dict[str, Path], device: torch.device, half: bool
) -> list[Stage]:
    """Load each stage's model (checking it is of the stage's task) and wrap it in its adapter."""
    pcfg, stages = cfg.pipeline, []
    for name in order:
        scfg = cfg.stages[name]
        model = next(iter(load_models([ckpts[name]], device).values()))
        prepare_for_inference(model.net, bool(cfg.channels_last), bool(cfg.compile), bool(cfg.bf16))
        if model.task != STAGE_TASKS[name]:
            raise ValueError(f"{ckpts[name]}: a {model.task!r} model, but stage {name!r} needs a "
                             f"{STAGE_TASKS[name]!r} one (stages.{name}.ckpt)")
        if name in ("restore", "upscale"):
            if name == "restore" and model.scale != 1:
                raise ValueError(f"{ckpts[name]}: restore models keep the size, but this one scales x{model.scale}")
            stages.append(ImageStage(name, model, device, half, cfg.tile, cfg.tile_overlap, pcfg.batch))
        elif name == "colorize":
            stages.append(ColorizeStage(model, device, scfg.render_size, scfg.stabilize, scfg.stabilize_strength,
                                        scfg.scene_cut, scfg.warmup, pcfg.batch))
        else:
            factor, fps = _interp_plan(scfg)
            detector = SceneCutDetector(scfg.scene_cut.hist_threshold, scfg.scene_cut.diff_threshold)
            stages.append(InterpolateStage(model, device, half, factor, fps, detector))
    return stages


def input_fingerprint(source: Path) -> dict:
    """What identifies the input: size and sha256 of the file (of every file, for a frame folder); not its path,
    so a moved reel still resumes."""
    if source.is_dir():
        digest = hashlib.sha256()
        files = sorted(p for p in source.iterdir() if p.is_file())
        for file in files:
            digest.update(file.name.encode() + b"\0" + file_digest(file).encode())
        return {"files": len(files), "sha256": digest.hexdigest()}
    return {"bytes": source.stat().st_size, "sha256": file_digest(source)}


def config_hash(
    cfg: DictConfig, order: list[str], ckpts: dict[str, Path], device: torch.device, half: bool
) -> tuple[str, dict]:
    """Everything that changes a segment's frames, and a readable summary of it. Not the output format (segments
    survive a crf change) nor where the checkpoints lie (their contents count)."""
    pcfg = cfg.pipeline
    stages = {name: {**OmegaConf.to_container(cfg.stages[name], resolve=True), "ckpt": None,
                     "ckpt_sha256": checkpoint_digest(ckpts[name])} for name in order}
    hashed = {
        "order": order, "stages": stages,
        "segment_frames": pcfg.segment_frames, "batch": pcfg.batch, "max_frames": pcfg.max_frames,
        "input_fps": str(pcfg.input_fps), "tile": cfg.tile, "tile_overlap": cfg.tile_overlap,
        "device": device.type, "half": half, "torch": torch.__version__,
        "bf16": bool(cfg.bf16),  # changes the frames (slightly); channels_last and compile do not beyond rounding
    }
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    summary = {**hashed, "stages": {name: {**stages[name], "ckpt": str(ckpts[name])} for name in order}}
    return digest, summary


def timed_frames(source: Path, info: VideoInfo, input_fps: Fraction, max_frames: int | None) -> Iterator[Item]:
    """Input frames as uint8 items with pts (folders, and frames without pts: index / fps); a truncated video
    (fewer frames than its header says) or timestamps that do not increase end in a VideoReadError."""
    if info.is_folder or not info.time_base:
        tb, fps = 1 / input_fps, input_fps
    else:
        tb, fps = info.time_base, info.fps or input_fps
    prev = None
    for frame in iter_frames(source, complete=max_frames is None):
        if max_frames is not None and frame.index >= max_frames:
            return
        pts = frame.pts if frame.pts is not None and not info.is_folder else round(frame.index / fps / tb)
        if prev is not None and pts <= prev:
            raise VideoReadError(f"{source}: frame {frame.index} has timestamp {pts}, not after {prev}")
        prev = pts
        yield Item(frame.index, pts, tb, np.round(frame.image * 255).astype(np.uint8))


def _as_float(items: list[Item]) -> list[Item]:
    return [Item(it.index, it.pts, it.tb, it.image.astype(np.float32) / 255.0) for it in items]


def process_segments(
    source: Path, info: VideoInfo, stages: list[Stage], work: WorkDir, segment_frames: int, input_fps: Fraction,
    max_frames: int | None,
) -> list[Segment]:
    """Every segment, computed or (when a previous run completed it) verified and reused, in order."""
    frames = timed_frames(source, info, input_fps, max_frames)
    buffer: deque[Item] = deque()  # decoded frames still needed by a window, uint8
    decoded, exhausted = 0, False
    segments: list[Segment] = []
    total = min(info.frames, max_frames) if info.frames and max_frames else info.frames or max_frames
    with tqdm(total=total or None, desc=f"pipeline {source.name}", unit="frame") as bar:
        while True:
            s = len(segments) * segment_frames
            e = s + segment_frames
            a, b = stage_windows(stages, s, e)[0]
            while not exhausted and decoded < b:
                try:
                    buffer.append(next(frames))
                    decoded += 1
                except StopIteration:
                    exhausted = True
            if exhausted:
                if decoded == 0:
                    raise VideoReadError(f"{source}: holds no frames")
                if decoded == 1 and any(isinstance(st, InterpolateStage) for st in stages):
                    raise VideoReadError(f"{source}: holds only 1 frame; frame interpolation needs at least 2")
                if s >= decoded:
                    break
                e = min(e, decoded)
                a, b = stage_windows(stages, s, e)[0]
            while buffer and buffer[0].index < a:
                buffer.popleft()
            segment = work.done(len(segments), s, e)
            if segment is None:
                window = _as_float([it for it in buffer if it.index < b])
                segment = work.write(len(segments), s, e, run_chain(stages, window, s, e))
                bar.set_postfix_str(f"segment {segment.number}")
            else:
                bar.set_postfix_str(f"segment {segment.number} done before")
            segments.append(segment)
            bar.update(e - s)
    return segments


def run_pipeline(cfg: DictConfig) -> list[Path]:
    """Run the film pipeline cfg describes (see module docstring); returns [output] and prints the other files."""
    pcfg = cfg.pipeline
    for key in ("input", "output"):
        if cfg[key] is None:
            raise ValueError(f"{key}=... is required "
                             "(python infer.py pipeline=film input=reel.mp4 output=restored.mp4)")
    source, output = Path(cfg.input), Path(cfg.output)
    if not source.exists():
        raise ValueError(f"{source}: input not found")
    fmt = output_format(output, pcfg.format)
    sinks = sink_paths(output, fmt, pcfg.side_by_side, pcfg.contact_frames)
    work_path = output.with_name(f"{output.name}.work")
    if int(pcfg.segment_frames) < 1:
        raise ValueError(f"pipeline.segment_frames={pcfg.segment_frames}: must be at least 1")
    order = validate_order(list(pcfg.order))
    ckpts = {name: resolve_checkpoint(name, cfg.stages[name].ckpt, Path(pcfg.runs_dir)) for name in order}
    # nothing written may touch the input or a stage's model file (folders: the work dir, PNG frames output)
    files = [p for p in (sinks.side_by_side, sinks.contact) if p is not None] + ([] if fmt == "png" else [output])
    Inputs([source]).add_models(ckpts.values()).check_all(files, [work_path] + ([output] if fmt == "png" else []))
    info = probe(source)
    input_fps = Fraction(str(pcfg.input_fps)).limit_denominator(1001)
    device = resolve_device(cfg.device)
    half = device.type == "cuda" if cfg.half == "auto" else bool(cfg.half) and device.type == "cuda"
    stages = build_stages(cfg, order, ckpts, device, half)
    digest, summary = config_hash(cfg, order, ckpts, device, half)
    print(f"pipeline: {' -> '.join(f'{st.name} ({ckpts[st.name]})' for st in stages)}")
    work = WorkDir(work_path, {"config_hash": digest, "config": summary, "input": input_fingerprint(source),
                               "input_path": str(source.resolve())}, bool(pcfg.resume))
    # the temps of a killed final encode; only now, holding the work dir's lock, so no other run's are touched
    remove_stale_temps(p for p in (output, sinks.side_by_side, sinks.contact) if p is not None)
    completed = False
    try:
        with torch.inference_mode():
            segments = process_segments(source, info, stages, work, int(pcfg.segment_frames), input_fps,
                                        pcfg.max_frames)
        rate = info.fps if info.fps and not info.is_folder else input_fps
        for stage in stages:
            rate = stage.rate(rate)
        audio_end = None
        if pcfg.max_frames is not None:  # a shortened film keeps only the sound of its own frames
            last = segments[-1]
            audio_end = float(last.items[-1][1] * last.time_base + 1 / rate)
        written = assemble(work, segments, sinks, source, rate, pcfg.crf, pcfg.pix_fmt, pcfg.audio, audio_end,
                           pcfg.contact_frames, pcfg.contact_side)
        completed = True
    finally:  # a run refused before its first segment (1-frame input, mixed frame sizes) leaves nothing behind
        work.close(remove=(completed and not pcfg.keep_segments) or not any(work.path.glob("seg_*")))
    for path in written[1:]:
        print(f"also wrote {path}")
    return [output]
