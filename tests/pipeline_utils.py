"""Tiny exports of the four built-in tasks and tiny clips (with or without sound) for the pipeline tests."""

from __future__ import annotations

import hashlib
import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from conftest import ROOT
from interp_utils import scene
from restoregan.gans.checkpoint import save_export

# untrained but small: the pipeline's plumbing is under test, not the models. (generator, task kwargs)
ARCHS = {
    "restore": ({"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4,
                 "scale": 1}, {}),
    "colorize": ({"_target_": "restoregan.gans.colorize_unet.ColorizeUNet", "encoder": "resnet18", "pretrained": False,
                  "decoder_channels": [16, 16, 16, 8, 8], "attention": True},
                 {"color_space": "yuv", "render_size": 32}),
    "sr": ({"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 1, "scale": 2},
           {"scale": 2}),
    "interp": ({"_target_": "restoregan.gans.interp_net.InterpolationNet", "num_feat": [8, 8, 8],
                "num_conv": [1, 1, 1], "scales": [4, 2, 1], "refine_feat": 4}, {}),
}


def task_named(name: str, **kwargs):
    """The built-in task whose `name` is `name`, built with `kwargs` (tests may look tasks up by name)."""
    from restoregan.tasks import builtin_task_classes

    cls = next((c for c in builtin_task_classes() if c.name == name), None)
    if cls is None:
        raise LookupError(f"no built-in task named {name!r}")
    return cls(**kwargs)


def export_meta(task: str) -> dict:
    """save_export's meta for a tiny export of `task`: the task's config and scale."""
    built = task_named(task, **ARCHS[task][1])
    return {"task": built.config(), "scale": built.scale}


def make_export(runs: Path, run: str, task: str, seed: int = 0) -> Path:
    """runs/<run>/export/generator.{safetensors,yaml} of a random tiny net of `task` (yaml path returned)."""
    from hydra.utils import instantiate

    torch.manual_seed(seed)
    arch = ARCHS[task][0]
    net = instantiate(arch)
    if task == "colorize":  # a zero head outputs grey; random chroma makes colour visible
        torch.nn.init.normal_(net.head.weight, std=0.3)
    save_export(runs / run / "export" / "generator", net, arch, export_meta(task))
    return runs / run / "export" / "generator.yaml"


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 12, audio: str | None = None,
               audio_seconds: float | None = None) -> Path:
    """Lossless h264 (yuv444p, qp 0) frames; `audio`: an audio codec ("aac", "pcm_u8", ...) for a 440 Hz sine
    lasting as long as the video (or `audio_seconds`)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = w, h, "yuv444p"
        video.options = {"qp": "0"}
        sound = None
        if audio is not None:
            rate = 22050
            sound = container.add_stream(audio, rate=rate)
            sound.layout = "mono"
            seconds = audio_seconds if audio_seconds is not None else len(frames) / fps
            t = np.arange(round(seconds * rate)) / rate
            wave = 0.3 * np.sin(2 * np.pi * 440 * t)
            fmt = sound.codec_context.format.name
            data = (wave * 127 + 128).astype(np.uint8) if fmt == "u8" else wave.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data[None], format="u8" if fmt == "u8" else "flt", layout="mono")
            frame.rate, frame.pts = rate, 0
            for packet in sound.encode(frame):
                container.mux(packet)
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                container.mux(packet)
    return path


def moving_clip(n: int = 10) -> list[np.ndarray]:
    """64x48 frames of a textured scene with a moving square (interp_utils.scene)."""
    return scene(n)


def compose_infer(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("infer", overrides=overrides)


def infer_module():
    spec = importlib.util.spec_from_file_location("infer_script", ROOT / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_infer(overrides: list[str]) -> list[Path]:
    with torch.no_grad():
        return infer_module().infer(compose_infer(["pipeline=film", "device=cpu", *overrides]))


def frame_hashes(path: Path) -> list[str]:
    """sha256 of each decoded frame's RGB bytes, in order."""
    with av.open(str(path)) as container:
        return [hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest() for f in container.decode(video=0)]


def streams(path: Path) -> dict:
    """What PyAV reads back: video frame count, rate, size, frame times (s), durations (s) per stream."""
    with av.open(str(path)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        out = {"frames": len(times), "times": times, "fps": Fraction(v.average_rate) if v.average_rate else None,
               "size": (v.codec_context.height, v.codec_context.width),
               "video_duration": float(v.duration * v.time_base) if v.duration else None, "audio": None}
        if container.streams.audio:
            a = container.streams.audio[0]
            end = 0.0
            for packet in container.demux(a):
                if packet.pts is not None:
                    end = max(end, float((packet.pts + packet.duration) * packet.time_base))
            out["audio"] = {"codec": a.codec_context.name, "end": end, "rate": a.codec_context.sample_rate}
    return out
