"""infer.py's image options, as Real-ESRGAN users expect them (top-level keys of conf/infer.yaml):

- `outscale`: any output factor: the model's output resized to round(input side x outscale) with Lanczos
  (Pillow, on float32 channels). Pillow's resampling widens the filter by the factor when shrinking, so it is
  antialiased both ways (OpenCV's INTER_LANCZOS4, Real-ESRGAN's choice, aliases when shrinking), and on float
  channels it keeps 16-bit outputs' levels;
- `alpha`: an alpha channel is kept, resized with the same filter from the input's alpha straight to the output
  size, not run through the model: a mask is flat regions and edges, which an SR network trained on photos
  fills with invented texture and a restoration model "repairs"; a resize keeps flat regions exact (fully
  transparent stays 0, opaque stays 1) and costs nothing. The RGB goes through the model as read (the colour
  under alpha 0 is kept, not composited);
- `image_format` (auto = the input's own suffix when it is .png/.jpg/.jpeg/.webp, else png), `quality` (JPEG and
  WebP), `suffix` (null = the task's output_suffix), `keep_grey`, `depth` (auto = 16-bit PNG out for a 16-bit or
  float input).

Video and frame-sequence inputs are the film pipeline's (the `video:` block); these options are for images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restoregan.data.io import LoadedImage, get_max_pixels
from restoregan.tasks.image import ImageToImageTask

IMAGE_FORMATS = ("auto", "png", "jpg", "webp")
_SUFFIX_OF = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
_KEPT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # image_format=auto keeps these input suffixes


@dataclass(frozen=True)
class ImageOptions:
    """The image keys of conf/infer.yaml, checked (`from_cfg`)."""

    outscale: float | None = None
    alpha: bool = True
    image_format: str = "auto"
    quality: int = 95
    suffix: str | None = None
    keep_grey: bool = False
    depth: str | int = "auto"

    @classmethod
    def from_cfg(cls, cfg: Any) -> ImageOptions:
        """From infer.py's config; a value it cannot take is refused in one line naming the key."""
        get = lambda key, default: cfg.get(key, default)  # noqa: E731 - older configs lack the keys
        outscale = get("outscale", None)
        if outscale is not None and (isinstance(outscale, bool) or not isinstance(outscale, (int, float))
                                     or not math.isfinite(outscale) or outscale <= 0):
            raise ValueError(f"outscale={outscale}: expected an output factor above 0 (e.g. 2 or 3.5), or null "
                             "for the model's own scale")
        fmt = get("image_format", "auto")
        if fmt not in IMAGE_FORMATS:
            raise ValueError(f"image_format={fmt}: expected one of {', '.join(IMAGE_FORMATS)}")
        quality = get("quality", 95)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"quality={quality}: expected a whole number from 1 to 100 (JPEG and WebP quality)")
        suffix = get("suffix", None)
        if suffix is not None and (not isinstance(suffix, str) or "/" in suffix or "\\" in suffix):
            raise ValueError(f"suffix={suffix}: expected text added to each output's stem (e.g. _x4, or '' for "
                             "none), without a path separator; or null for the task's own")
        depth = get("image_depth", "auto")
        if depth not in ("auto", 8, 16) or isinstance(depth, bool):
            raise ValueError(f"image_depth={depth}: expected auto, 8 or 16 (bits per channel)")
        if depth == 16 and fmt in ("jpg", "webp"):
            raise ValueError(f"image_depth=16: {fmt.upper()} holds 8 bits only; use image_format=png (or auto)")
        flags = {}
        for key in ("alpha", "keep_grey"):
            flags[key] = get(key, key == "alpha")  # alpha kept, grey only when asked
            if not isinstance(flags[key], bool):
                raise ValueError(f"{key}={flags[key]}: expected true or false")
        return cls(None if outscale is None else float(outscale), flags["alpha"], fmt, quality, suffix,
                   flags["keep_grey"], depth)

    def target_suffix(self, src: Path) -> str:
        """The output file's suffix for input `src`: the chosen format's, or with auto the input's own when it is
        one of png/jpg/jpeg/webp (png for anything else, and whenever image_depth=16)."""
        if self.image_format != "auto":
            return _SUFFIX_OF[self.image_format]
        own = src.suffix.lower()
        return own if own in _KEPT_SUFFIXES and (self.depth != 16 or own == ".png") else ".png"

    def stem_suffix(self, task: Any) -> str:
        return task.output_suffix if self.suffix is None else self.suffix

    def finish(self, image: LoadedImage, out: np.ndarray, task: Any, target: Path) -> dict[str, Any]:
        """The keyword arguments of `write_image_as(target, ...)` for model output `out` ((H, W, 3) float RGB) of
        `image`: resized to outscale, its alpha, bit depth and greyness as the options say."""
        fmt = target.suffix.lower()
        h, w = image.rgb.shape[:2]
        size = out.shape[:2] if self.outscale is None else output_size(h, w, self.outscale)
        rgb = resize(out, size)
        alpha = None
        if self.alpha and image.alpha is not None and fmt not in (".jpg", ".jpeg"):
            alpha = resize(image.alpha, size)
        if self.depth == "auto":
            bits = image.bits if fmt == ".png" else 8
        else:
            bits = int(self.depth)
        grey = self.keep_grey and image.grey and keeps_colour(task)
        return {"rgb": rgb, "alpha": alpha, "bits": bits, "grey": grey, "quality": self.quality}


    def check_size(self, source: Path, height: int, width: int) -> None:
        """Refuse, before the model runs, an `outscale` output above the pixel cap (`max_pixels`, which inputs
        are held to as well): outscale=200 on a photo would otherwise ask for hundreds of GB."""
        cap = get_max_pixels()
        if self.outscale is None or cap is None:
            return
        h, w = output_size(height, width, self.outscale)
        if h * w > cap:
            raise ValueError(f"{source}: outscale={self.outscale} makes it {w}x{h} = {h * w} pixels, above "
                             f"max_pixels={cap}; lower outscale or raise max_pixels")


def keeps_colour(task: Any) -> bool:
    """Whether a task maps grey to grey, so that keep_grey may write a grey input's output as grey: image-to-image
    tasks (sr, restore: restoregan.tasks.image), or any task that says so with `keeps_colour = True`. Not a
    colorizer, whose output is colour by design."""
    return bool(getattr(task, "keeps_colour", isinstance(task, ImageToImageTask)))


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """(round(height x outscale), round(width x outscale)), halves up, at least 1 pixel."""
    return tuple(max(1, math.floor(side * outscale + 0.5)) for side in (height, width))  # type: ignore[return-value]


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) or (H, W, C) float -> `size` (height, width) float32 in [0, 1]: Pillow's Lanczos on each channel in
    float32 ("F" mode), antialiased when shrinking. Unchanged when already that size."""
    img = np.asarray(img, dtype=np.float32)
    if img.shape[:2] == tuple(size):
        return img
    planes = img[:, :, None] if img.ndim == 2 else img
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[:, :, c])).resize(
        (size[1], size[0]), Image.Resampling.LANCZOS)) for c in range(planes.shape[2])], axis=2)
    out = np.clip(out, 0.0, 1.0)  # Lanczos overshoots at edges
    return out[:, :, 0] if img.ndim == 2 else out
