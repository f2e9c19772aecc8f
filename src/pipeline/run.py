"""Loaded models applied to a video, one way for every task: `python infer.py pipeline=film input=reel.mp4
output=restored.mp4` (a chain of stages), and `python infer.py ckpt=... input=VIDEO output=DIR` (one stage).

A stage is `model.task.stage(name, model, run)` (restoregan.tasks.base.Stage). The film pipeline's stages are the
keys of `stages:` named in `pipeline.order`, each with `stages.<name>.ckpt` or the newest export of its `task` under
`pipeline.runs_dir`; the other keys of a stage are options laid over its model's task. Input frames stream through
in segments (restoregan.pipeline.segments), each stored losslessly in `<output>.work/` so a killed run resumes from
its last complete segment; when all are done they are encoded once into the output (restoregan.pipeline.output),
with the input's sound, which appears only then. The `video:` block of conf/infer.yaml sets the encode, segments
and side outputs for both. See docs/PIPELINE.md.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from restoregan.atomic import remove_stale_temps
from restoregan.data.video import PROGRESSIVE, VideoInfo, VideoReadError, iter_frames, looks_combed, probe
from restoregan.gans.checkpoint import CheckpointError
from restoregan.gans.onnx_model import OnnxGenerator
from restoregan.inference.speed import exact_setting, resolve_switches
from restoregan.inference.tiled import prepare_for_inference, resolve_device, resolve_half
from restoregan.models import Model, load_model, with_options
from restoregan.outputs import Inputs
from restoregan.pipeline.checkpoints import checkpoint_digest, file_digest, resolve_checkpoint
from restoregan.pipeline.background import ahead
from restoregan.pipeline.output import Assembler, Encode, Sinks, check_encoder, output_format, sink_paths
from restoregan.pipeline.segments import Segment, WorkDir, run_chain, stage_windows
from restoregan.tasks.base import Item, RunOptions, Stage

STAGE_KEYS = ("task", "ckpt")  # what a `stages.<name>` entry says besides its task's options


def run_options(cfg: DictConfig, device: torch.device) -> RunOptions:
    """infer.py's device/tile/half settings and `video.batch`, for every model it runs."""
    half = resolve_half(cfg.half, device) and not exact_setting(cfg)  # exact: fp32 on CUDA too
    return RunOptions(device, cfg.tile, cfg.tile_overlap, half, int(cfg.video.batch))


def prepare(model: Model, cfg: DictConfig) -> Model:
    """infer.py's speed switches (channels_last, compile, bf16; `auto` resolved for this model and device by
    restoregan.inference.speed, `exact=true` for none) applied to the model's network."""
    if isinstance(model.net, OnnxGenerator):  # runs as exported (onnx_model.prepare_for_infer says so)
        return model
    param = next(model.net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    switches, notes = resolve_switches(cfg, model.net, device, model.in_channels or 3, str(model.path),
                                       own=model.arch is not None)
    for note in notes:
        print(note)
    prepare_for_inference(model.net, switches.channels_last, switches.compile, switches.bf16)
    model.bf16 = switches.bf16
    return model


def make_stage(name: str, model: Model, run: RunOptions) -> Stage:
    """The model's task's stage, carrying whether the model runs in bf16 (the resume hash records it per stage)."""
    stage = model.task.stage(name, model, run)
    stage.bf16 = model.bf16
    return stage


# --- the film pipeline's stages ----------------------------------------------------------------------------
def validate_order(order: Iterable[Any], stages: Mapping[str, Any]) -> list[str]:
    """The stages to run, checked before any model is loaded: stages configured under `stages:`, each once.
    (Which must come first is the tasks' to say: `check_first`, once they are loaded.)"""
    order, known = [str(name) for name in order], [str(name) for name in stages]
    if not order:
        raise ValueError(f"pipeline.order is empty: name at least one of {', '.join(known)}")
    unknown = [name for name in order if name not in known]
    if unknown:
        raise ValueError(f"pipeline.order: unknown stage {unknown[0]!r}; stages are {', '.join(known)} "
                         f"(add one with +stages.{unknown[0]}.ckpt=PATH)")
    twice = sorted({name for name in order if order.count(name) > 1})
    if twice:
        raise ValueError(f"pipeline.order: stage {twice[0]!r} appears more than once")
    return order


def stage_options(scfg: DictConfig | Mapping[str, Any]) -> dict:
    """A stage's options for its task (its keys besides task and ckpt), as plain data."""
    data = OmegaConf.to_container(scfg, resolve=True) if isinstance(scfg, DictConfig) else dict(scfg)
    return {str(k): v for k, v in data.items() if k not in STAGE_KEYS}


def _wrong_task(name: str, path: Path, got: str, want: str) -> ValueError:
    return ValueError(f"{path}: a {got!r} model, but stage {name!r} needs a {want!r} one (stages.{name}.ckpt)")


def load_stage_model(name: str, scfg: DictConfig, path: Path, device: torch.device) -> Model:
    """The stage's model with its options laid over its task, once the task is checked to be the one
    `stages.<name>.task` asks for (options written for another task would fail obscurely)."""
    want = scfg.get("task")
    model = load_model(path, device)
    if want is not None and model.task.name != want:
        raise _wrong_task(name, path, model.task.name, want)
    try:
        return with_options(model, stage_options(scfg))
    except CheckpointError as err:  # name the stage's key: that is where the option was set
        raise ValueError(f"stages.{name}: {err}") from None


def check_first(order: list[str], models: Mapping[str, Model]) -> None:
    """A task that must run first in a chain (`pipeline_first`, e.g. restoration: damage goes before colour is
    guessed or detail invented at a larger size) is first; stages not loaded yet are not looked at."""
    for position, name in enumerate(order):
        if name not in models:
            break
        task = models[name].task
        if position > 0 and getattr(task, "pipeline_first", False):
            raise ValueError(f"pipeline.order={order}: {name} must come first (its task, {task.name}, runs before "
                             "any other stage)")


def build_stages(cfg: DictConfig, order: list[str], ckpts: dict[str, Path], run: RunOptions) -> list[Stage]:
    """Each stage's model loaded (checked against its task, prepared for speed) and made a stage by its task."""
    models = {}
    for name in order:
        models[name] = prepare(load_stage_model(name, cfg.stages[name], ckpts[name], run.device), cfg)
        check_first(order, models)  # as each loads: before a later stage's model is read
    return [make_stage(name, models[name], run) for name in order]


# --- one run over a video ----------------------------------------------------------------------------------
@dataclass
class Job:
    """Where a video run reads and writes, checked (see `plan_job`)."""

    source: Path
    info: VideoInfo
    sinks: Sinks
    work_path: Path

    @property
    def output(self) -> Path:
        return self.sinks.output


def plan_job(source: Path, output: Path, vcfg: DictConfig, models: Iterable[Path]) -> Job:
    """The outputs of a video run (`output`: a file, or a folder for PNG frames), refused before any work when
    one would touch the input or a model file, or when the encoder refuses the settings; an input that is no
    readable video is refused here too."""
    if not source.exists():
        raise ValueError(f"{source}: input not found")
    fmt = output_format(output, vcfg.format)
    sinks = sink_paths(output, fmt, vcfg.side_by_side, vcfg.contact_frames)
    work_path = output.with_name(f"{output.name}.work")
    # nothing written may touch the input or a model file (folders: the work dir, a PNG frames output)
    files = [p for p in (sinks.side_by_side, sinks.contact) if p is not None] + ([] if fmt == "png" else [output])
    Inputs([source]).add_models(models).check_all(files, [work_path] + ([output] if fmt == "png" else []))
    info = probe(source)
    check_encoder(sinks, vcfg.crf, vcfg.pix_fmt, video_bits(vcfg, info))
    return Job(source, info, sinks, work_path)


@dataclass(frozen=True)
class Decoding:
    """How the input's frames are decoded: kept at `bits` per sample (8: uint8 frames; more: uint16, and the videos
    written at 10 bits), deinterlaced or not; chosen by `decoding` from video.depth and video.deinterlace."""

    bits: int = 8
    deinterlace: bool = False

    @property
    def deep(self) -> bool:
        return self.bits > 8

    def field_order(self, info: VideoInfo) -> int | None:
        """The outputs' field order tag: progressive, unless interlaced input was kept as it was."""
        return info.field_order if info.interlaced and not self.deinterlace else PROGRESSIVE


COMB_FRAMES = 8  # first frames a combing check of video.deinterlace=auto looks at


def _switch(value: Any, key: str, choices: tuple[str, ...]) -> str:
    word = {True: "true", False: "false"}.get(value, str(value).lower()) if isinstance(value, bool) else str(value)
    if word not in choices:
        raise ValueError(f"{key}={value}: must be {', '.join(choices)}")
    return word


def video_bits(vcfg: DictConfig, info: VideoInfo) -> int:
    """video.depth for this input: auto = 10 when its stream has more than 8 bits per sample, else 8."""
    depth = _switch(vcfg.get("depth", "auto"), "video.depth", ("auto", "8", "10"))
    if info.is_folder:
        return 8
    return (10 if info.bits > 8 else 8) if depth == "auto" else int(depth)


def decoding(vcfg: DictConfig, source: Path, info: VideoInfo) -> Decoding:
    """video.depth (auto: 10 when the input stream has more than 8 bits per sample, else 8) and video.deinterlace
    (auto: when the stream's field order says interlaced or its first frames look combed) for this input. A frame
    folder is read as it is (8-bit, never deinterlaced)."""
    mode = _switch(vcfg.get("deinterlace", "auto"), "video.deinterlace", ("auto", "true", "false"))
    bits = video_bits(vcfg, info)
    if info.is_folder:
        return Decoding()
    deint = mode == "true"
    if mode == "auto":
        deint = info.interlaced
        if not deint:
            frames = iter_frames(source)
            deint = looks_combed([f.image for _, f in zip(range(COMB_FRAMES), frames)])
            frames.close()
    return Decoding(bits, deint)


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
    cfg: DictConfig, order: list[str], options: Mapping[str, dict], ckpts: Mapping[str, Path], run: RunOptions,
    decode: Decoding = Decoding(), bf16: Mapping[str, bool] | None = None,
) -> tuple[str, dict]:
    """Everything that changes a segment's frames, and a readable summary of it. Not the output format (segments
    survive a crf change) nor where the checkpoints lie (their contents count)."""
    vcfg = cfg.video
    stages = {name: {**options[name], "ckpt": None, "ckpt_sha256": checkpoint_digest(ckpts[name])} for name in order}
    hashed = {
        "order": order, "stages": stages,
        "segment_frames": vcfg.segment_frames, "batch": run.batch, "max_frames": vcfg.max_frames,
        "input_fps": str(vcfg.input_fps), "tile": run.tile, "tile_overlap": run.tile_overlap,
        "device": run.device.type, "half": run.half, "torch": torch.__version__,
        # bf16 changes the frames (slightly), so each stage's choice counts (`auto` resolves per model and machine);
        # channels_last and compile do not beyond rounding
        "bf16": {name: bool((bf16 or {}).get(name, False)) for name in order},
        "bits": decode.bits, "deinterlace": decode.deinterlace,
    }
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()
    summary = {**hashed, "stages": {name: {**stages[name], "ckpt": str(ckpts[name])} for name in order}}
    return digest, summary


def timed_frames(source: Path, info: VideoInfo, input_fps: Fraction, max_frames: int | None,
                 decode: Decoding = Decoding()) -> Iterator[Item]:
    """Input frames as uint8 items (uint16 for deep `decode`) with pts (folders, and frames without pts: index /
    fps); a truncated video (fewer frames than its header says) or timestamps that do not increase end in a
    VideoReadError."""
    if info.is_folder or not info.time_base:
        tb, fps = 1 / input_fps, input_fps
    else:
        tb, fps = info.time_base, info.fps or input_fps
    prev = None
    for frame in iter_frames(source, complete=max_frames is None, deinterlace=decode.deinterlace):
        if max_frames is not None and frame.index >= max_frames:
            return
        pts = frame.pts if frame.pts is not None and not info.is_folder else round(frame.index / fps / tb)
        if prev is not None and pts <= prev:
            raise VideoReadError(f"{source}: frame {frame.index} has timestamp {pts}, not after {prev}")
        prev = pts
        yield Item(frame.index, pts, tb, to_levels(frame.image, decode.deep))


def to_levels(image: np.ndarray, deep: bool) -> np.ndarray:
    """A float frame as the integers it is kept in between stages: uint16 when `deep`, else uint8."""
    if deep:
        return np.round(image * 65535).astype(np.uint16)
    return np.round(image * 255).astype(np.uint8)


def _as_float(items: list[Item]) -> list[Item]:
    return [Item(it.index, it.pts, it.tb, it.image.astype(np.float32) / np.iinfo(it.image.dtype).max)
            for it in items]


def _about_input(source: Path, work: Path, err: ValueError) -> ValueError:
    """A stage's complaint about the frames it was handed (timestamps, too few frames), naming the input; errors
    that name a file already (the input, a segment file) pass as they are."""
    message = str(err)
    if message.startswith((str(source), str(work))) or isinstance(err, CheckpointError):
        return err
    return VideoReadError(f"{source}: {message}")


def overlap_setting(value: Any, device: torch.device) -> bool:
    """`video.overlap`: true, false, or auto (on for CUDA, where the CPU is free while the GPU computes; off on a
    CPU, whose cores the models already use: threads beside them only contend, bench/perf_pipeline.py)."""
    choice = _switch(value, "video.overlap", ("auto", "true", "false"))
    return device.type == "cuda" if choice == "auto" else choice == "true"


def expected_frames(info: VideoInfo, max_frames: int | None) -> int | None:
    """Input frames the run will read, as far as the header says (None: it does not)."""
    return min(info.frames, max_frames) if info.frames and max_frames else info.frames or max_frames


def process_segments(
    source: Path, info: VideoInfo, stages: list[Stage], work: WorkDir, segment_frames: int, input_fps: Fraction,
    max_frames: int | None, decode: Decoding = Decoding(), assembler: Assembler | None = None,
    overlap: bool = False,
) -> list[Segment]:
    """Every segment, computed or (when a previous run completed it) verified and reused, in order; each handed
    to `assembler` (frame by frame as computed) when given. `overlap`: frames are decoded a few ahead in a
    thread."""
    frames = timed_frames(source, info, input_fps, max_frames, decode)
    if overlap:
        frames = ahead(frames, depth=8, name="decode")
    try:
        return _segments(frames, source, info, stages, work, segment_frames, max_frames, assembler)
    finally:  # the decoding thread stops with the run, whatever ended it
        frames.close()


def _segments(frames: Iterator[Item], source: Path, info: VideoInfo, stages: list[Stage], work: WorkDir,
              segment_frames: int, max_frames: int | None, assembler: Assembler | None) -> list[Segment]:
    buffer: deque[Item] = deque()  # decoded frames still needed by a window, uint8 (uint16 when deep)
    decoded, exhausted = 0, False
    segments: list[Segment] = []
    total = expected_frames(info, max_frames)
    # a stage may need more than one frame (interpolation: a pair); said by its optional `min_frames`
    least = max(stages, key=lambda st: getattr(st, "min_frames", 1))
    with tqdm(total=total or None, desc=f"{'+'.join(st.name for st in stages)} {source.name}", unit="frame") as bar:
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
                need = getattr(least, "min_frames", 1)
                if decoded < need:
                    raise VideoReadError(f"{source}: holds only {decoded} frame{'s' * (decoded != 1)}; stage "
                                         f"{least.name!r} needs at least {need}")
                if s >= decoded:
                    break
                e = min(e, decoded)
                a, b = stage_windows(stages, s, e)[0]
            while buffer and buffer[0].index < a:
                buffer.popleft()
            segment = work.done(len(segments), s, e)
            if segment is None:
                window = _as_float([it for it in buffer if it.index < b])
                computed = run_chain(stages, window, s, e)
                if assembler is not None:
                    computed = assembler.tee(computed, work.deep)
                try:
                    segment = work.write(len(segments), s, e, computed)
                except ValueError as err:
                    if assembler is not None and err is assembler.error:  # the encoder's: it names the output
                        raise
                    named = _about_input(source, work.path, err)
                    if named is err:
                        raise
                    raise named from err
                bar.set_postfix_str(f"segment {segment.number}")
            else:
                if assembler is not None:
                    assembler.stored(segment)
                bar.set_postfix_str(f"segment {segment.number} done before")
            segments.append(segment)
            bar.update(e - s)
    return segments


def run_stages(cfg: DictConfig, job: Job, stages: list[Stage], options: Mapping[str, dict],
               ckpts: Mapping[str, Path], run: RunOptions) -> list[Path]:
    """Run `stages` over the job's input into its outputs (see module docstring); returns every file written,
    the output first."""
    vcfg, source = cfg.video, job.source
    if int(vcfg.segment_frames) < 1:
        raise ValueError(f"video.segment_frames={vcfg.segment_frames}: must be at least 1")
    overlap = overlap_setting(vcfg.get("overlap", "auto"), run.device)
    info = job.info
    input_fps = Fraction(str(vcfg.input_fps)).limit_denominator(1001)
    order = [st.name for st in stages]
    decode = decoding(vcfg, source, info)
    if decode.deinterlace:
        why = "its stream says so" if info.interlaced else "forced" if vcfg.deinterlace is True else "it looks combed"
        print(f"{source}: interlaced ({why}): deinterlacing (bwdif) before the first stage")
    digest, summary = config_hash(cfg, order, options, ckpts, run, decode,
                                  {st.name: bool(getattr(st, "bf16", False)) for st in stages})
    work = WorkDir(job.work_path, {"config_hash": digest, "config": summary, "input": input_fingerprint(source),
                                   "input_path": str(source.resolve())}, bool(vcfg.resume), decode.deep)
    sinks = job.sinks
    # the temps of a killed final encode; only now, holding the work dir's lock, so no other run's are touched
    remove_stale_temps(p for p in (sinks.output, sinks.side_by_side, sinks.contact) if p is not None)
    rate = info.fps if info.fps and not info.is_folder else input_fps
    for stage in stages:
        rate = stage.rate(rate)
    enc = Encode(sinks, source, rate, vcfg.crf, vcfg.pix_fmt, vcfg.audio, vcfg.max_frames is not None,
                 vcfg.contact_frames, vcfg.contact_side, info.colour, decode.bits,
                 bool(vcfg.get("subtitles", True)), decode.deinterlace, decode.field_order(info))
    # with video.overlap, the final encode runs beside the models when the header says how many frames there are
    # (the contact sheet is spread over them); otherwise it follows the last segment
    known = expected_frames(info, vcfg.max_frames) if info.frames else None
    assembler = Assembler(work, enc, known, overlap)
    completed = False
    try:
        with torch.inference_mode():
            segments = process_segments(source, info, stages, work, int(vcfg.segment_frames), input_fps,
                                        vcfg.max_frames, decode, assembler, overlap)
        written = assembler.finish(segments)
        completed = True
    finally:  # a run refused before its first segment (1-frame input, mixed frame sizes) leaves nothing behind
        if not completed:
            assembler.abort()
        work.close(remove=(completed and not vcfg.keep_segments) or not any(work.path.glob("seg_*")))
    return written


def run_pipeline(cfg: DictConfig) -> list[Path]:
    """`infer.py pipeline=film`: the stages of `pipeline.order` over cfg.input into cfg.output (a file, or a
    folder of PNG frames); returns [output] and prints the other files written."""
    pcfg = cfg.pipeline
    for key in ("input", "output"):
        if cfg[key] is None:
            raise ValueError(f"{key}=... is required "
                             "(python infer.py pipeline=film input=reel.mp4 output=restored.mp4)")
    order = validate_order(pcfg.order, cfg.stages)
    runs_dir = Path(pcfg.runs_dir)
    ckpts = {name: resolve_checkpoint(name, cfg.stages[name].get("ckpt"), cfg.stages[name].get("task"), runs_dir)
             for name in order}
    job = plan_job(Path(cfg.input), Path(cfg.output), cfg.video, ckpts.values())
    device = resolve_device(cfg.device)
    run = run_options(cfg, device)
    stages = build_stages(cfg, order, ckpts, run)
    print(f"pipeline: {' -> '.join(f'{st.name} ({ckpts[st.name]})' for st in stages)}")
    options = {name: stage_options(cfg.stages[name]) for name in order}
    written = run_stages(cfg, job, stages, options, ckpts, run)
    for path in written[1:]:
        print(f"also wrote {path}")
    return [job.output]
