"""Reading and writing images: float32 RGB in [0, 1], one-line errors that start with the path, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from restoregan.atomic import atomic_write_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageReadError(ValueError):
    """An input image (or folder of them) cannot be used; the message starts with its path."""


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1].

    Grey images are replicated to 3 channels; palette images are expanded by the decoder; an alpha channel is
    dropped, not composited (restoration models see colour only, and the colour under alpha 0 is kept);
    8- and 16-bit images are scaled by their own maximum (255 / 65535). Read through OpenCV because Pillow
    truncates 16-bit RGB PNGs to 8 bits.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return decode_image(np.fromfile(path, dtype=np.uint8).tobytes(), str(path))  # imdecode copes with any path


def decode_image(data: bytes, where: str, error: type[Exception] = ImageReadError) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) float32 RGB in [0, 1] with read_image's rules; errors name `where` (a file,
    or a shard member) and are of type `error`."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise error(f"{where}: not an image, or a corrupt one (OpenCV cannot decode it)")
    if img.dtype == np.uint8:
        arr = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        arr = img.astype(np.float32) / 65535.0
    elif img.dtype == np.float32:
        arr = np.clip(img, 0.0, 1.0)
    else:
        raise error(f"{where}: unsupported pixel type {img.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


def from_pil(image: Image.Image) -> np.ndarray:
    """A decoded PIL image (e.g. from a Hugging Face dataset) as (H, W, 3) float32 RGB, with read_image's rules."""
    if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey (Pillow has no 16-bit RGB)
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if image.mode == "F":
        return np.repeat(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)[:, :, None], 3, axis=2)
    # L / LA / P / RGBA / CMYK / YCbCr -> RGB: grey replicated, palette expanded, alpha dropped
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write (H, W, 3) float RGB in [0, 1] as 8-bit (rounded, clipped), atomically; format from the suffix."""
    path = Path(path)
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{path}: write_image takes an (H, W, 3) RGB array, got shape {img.shape}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}; use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    arr = np.round(np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0).astype(np.uint8)
    try:
        ok, buf = cv2.imencode(path.suffix.lower(), arr[:, :, ::-1])  # OpenCV codes BGR
    except cv2.error:
        ok = False  # this OpenCV build lacks the encoder
    if not ok:
        raise ValueError(f"{path}: cannot encode an image with suffix {path.suffix!r}")
    atomic_write_bytes(path, buf.tobytes())
    return path


def quantize(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Clip to [0, 1] and round to 8-bit levels, as the image would be once saved; real LR inputs are like
    this, and metrics are reported on such images. numpy -> float32, torch -> same dtype."""
    if isinstance(img, torch.Tensor):
        return torch.round(img.clamp(0, 1) * 255.0) / 255.0
    return (np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def natural_key(path: Path) -> list:
    """Sort frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(directory: str | Path) -> list[Path]:
    """Image files directly inside `directory`, in natural order."""
    directory = Path(directory)
    if not directory.exists():
        raise ImageReadError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise ImageReadError(f"{directory}: not a directory")
    # dot-files are skipped: macOS "._x.png" resource forks and our own ".x.png.*.tmp" partial writes
    files = [p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    files = sorted((p for p in files if p.is_file()), key=natural_key)
    if not files:
        raise ImageReadError(f"{directory}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) -> (3, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) -> (H, W, 3) float32."""
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"to_numpy takes one image, got a batch of {img.shape[0]}")
        img = img[0]
    return img.detach().float().cpu().permute(1, 2, 0).numpy()
