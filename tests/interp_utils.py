"""Synthetic clips for the frame-interpolation tests: a textured scene with a moving square, optional cut."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from restoregan.data.io import write_image


def scene(n: int, h: int = 48, w: int = 64, seed: int = 0, brightness: float = 0.3, speed: int = 2) -> list[np.ndarray]:
    """n frames (h, w, 3) in [0, 1]: smooth texture around `brightness` with a bright square moving right."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2)
    texture = np.clip(brightness + (texture - texture.mean()) * 4, 0, 1)
    frames = []
    for i in range(n):
        img = np.repeat(texture[:, :, None], 3, axis=2).copy()
        x = 4 + speed * i
        img[h // 3 : h // 3 + 12, x : x + 12] = 0.95
        frames.append(img)
    return frames


def clip_with_cut(n_a: int = 6, n_b: int = 6) -> list[np.ndarray]:
    """A dark scene then a bright, different one: a scene cut before frame n_a."""
    return scene(n_a, seed=1, brightness=0.25) + scene(n_b, seed=2, brightness=0.75)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 24, lossless: bool = True) -> Path:
    """Encode frames with PyAV (h264; qp 0 in yuv444p is lossless up to the RGB <-> YUV conversion)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv444p" if lossless else "yuv420p"
        stream.options = {"qp": "0"} if lossless else {"crf": "23"}
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_folder(folder: Path, frames: list[np.ndarray], start: int = 1) -> Path:
    """Frames as 1.png, 2.png, ... 10.png (numeric names: natural order differs from text order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames):
        write_image(folder / f"{start + i}.png", img)
    return folder


def read_back(path: Path) -> tuple[list[np.ndarray], list[float], float]:
    """Frames, their presentation times (s) and the stream duration (s) as PyAV reads them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)
            times.append(float(frame.pts * frame.time_base))
        duration = float(stream.duration * stream.time_base) if stream.duration else float(container.duration / av.time_base)
    return frames, times, duration
