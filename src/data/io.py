"""Reading and writing images: float32 RGB in [0, 1], one-line errors that start with the path, atomic writes.

Nothing a file says is trusted before it is checked (`inspect_image`, which every read goes through):
- its header is read first (Pillow opens lazily) and an image with more pixels than the cap is refused before
  anything is decoded (`set_max_pixels`, the `max_pixels` key of the entry points' configs);
- a PNG must reach its IEND chunk, a JPEG its end-of-image marker, a WebP its RIFF length, raw formats (BMP,
  PPM/PGM) and TIFF strips must lie inside the file: a truncated file is refused by name instead of decoding
  into a half-grey image or failing in a DataLoader worker;
- animated images (APNG, animated GIF/WebP, multi-page TIFF) are refused with their frame count;
- the EXIF orientation is applied, so a photo comes out the way viewers show it.

`read_image_full` / `write_image_as` keep what infer.py's image options need besides the colour: alpha, 16 bits,
a grey file's one channel, JPEG/WebP output.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from restoregan.atomic import atomic_write_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

# 100 MP: an 8K film scan (8192x6144, 50 MP) or a 10000x10000 print scan passes; 12000x12000 (144 MP, 1.7 GB
# as float32 RGB) does not. The environment variable carries the setting into DataLoader workers started by
# spawn (macOS, Windows), which import this module afresh.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "RESTOREGAN_MAX_PIXELS"


class ImageReadError(ValueError):
    """An input image (or folder of them) cannot be used; the message starts with its path."""


def _parse_max_pixels(value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"max_pixels={value}: expected a whole number of pixels (e.g. 100000000) or null")
    try:
        number = float(value) if isinstance(value, str) else value
        pixels = int(number)
    except (TypeError, ValueError):
        pixels, number = -1, -1
    if pixels <= 0 or pixels != number:
        raise ValueError(f"max_pixels={value}: expected a whole number of pixels (e.g. 100000000) or null for no cap")
    return pixels


def set_max_pixels(value: int | str | None) -> None:
    """Cap the pixels (width x height) of any image read; None (YAML null) removes the cap. The entry points call
    this with their config's `max_pixels`. Pillow's own decompression-bomb limit is raised to match, so that the
    cap set here is the one that applies."""
    global _max_pixels
    _max_pixels = _parse_max_pixels(value)
    os.environ[MAX_PIXELS_ENV] = "none" if _max_pixels is None else str(_max_pixels)
    _match_pillow_limit()


def get_max_pixels() -> int | None:
    return _max_pixels


_PILLOW_LIMIT = Image.MAX_IMAGE_PIXELS  # Pillow's own, at import


def _match_pillow_limit() -> None:
    # Pillow refuses above 2 x MAX_IMAGE_PIXELS (179 MP by default) whatever our cap says: lift it when the cap is
    # higher, put it back when the cap comes down (never below Pillow's own: from_pil's callers decode through it)
    if _max_pixels is None or _PILLOW_LIMIT is None:
        Image.MAX_IMAGE_PIXELS = None
    else:
        Image.MAX_IMAGE_PIXELS = max(_PILLOW_LIMIT, (_max_pixels + 1) // 2)


try:
    _max_pixels = _parse_max_pixels(os.environ.get(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS))
except ValueError:
    _max_pixels = DEFAULT_MAX_PIXELS
_match_pillow_limit()


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says, checked: size as shown (after the EXIF orientation), format, and the
    orientation (1-8, EXIF's numbering) that reading applies."""

    width: int
    height: int
    format: str
    orientation: int = 1


def inspect_image(path: str | Path) -> ImageInfo:
    """Check an image file without decoding its pixels: a header that Pillow (or, for TIFFs it cannot parse, our
    own reader) understands, within the pixel cap, a still image, not truncated. Cheap (the header and, for most
    files, the last bytes are read), so datasets check every file up front."""
    path = Path(path)
    _check_is_file(path)
    with open(path, "rb") as f:
        return _inspect(f, os.fstat(f.fileno()).st_size, str(path), ImageReadError, thorough=False)[0]


def check_images(paths: Sequence[str | Path]) -> list[ImageInfo]:
    """`inspect_image` of every file: what datasets call at construction, so that a bad file among thousands
    fails before the first training step, by name, rather than in a DataLoader worker an hour in."""
    return [inspect_image(p) for p in paths]


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], checked as `inspect_image` does before anything is decoded.

    Grey images are replicated to 3 channels; palette images are expanded by the decoder; an alpha channel is
    dropped, not composited (restoration models see colour only, and the colour under alpha 0 is kept);
    8- and 16-bit images are scaled by their own maximum (255 / 65535); the EXIF orientation is applied. Decoded
    by OpenCV because Pillow truncates 16-bit RGB PNGs to 8 bits.
    """
    path = Path(path)
    _check_is_file(path)
    return decode_image(path.read_bytes(), str(path))


def _check_is_file(path: Path) -> None:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")


def decode_image(data: bytes, where: str, error: type[Exception] = ImageReadError) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) float32 RGB in [0, 1] with read_image's rules; errors name `where` (a file,
    or a shard member) and are of type `error`."""
    arr = _decode_unchanged(data, where, error)[0]
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if arr.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    return np.ascontiguousarray(arr[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


def _decode_unchanged(
    data: bytes, where: str, error: type[Exception]
) -> tuple[np.ndarray, ImageInfo, int]:
    """(float32 array in [0, 1] with the file's own channels, (H, W) or (H, W, C) in OpenCV's BGR(A) order and
    the EXIF orientation applied; the checked header; bits per sample: 8, or 16 for 16-bit and float files)."""
    if not data:
        raise error(f"{where}: empty file, not an image")
    info, (height, width) = _inspect(io.BytesIO(data), len(data), where, error, thorough=True)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # e.g. OpenCV's own size limit (OPENCV_IO_MAX_IMAGE_PIXELS, 1 GP by default)
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise error(f"{where}: OpenCV cannot decode this {info.format} image ({detail})") from None
    if img is None:
        raise error(f"{where}: OpenCV cannot decode this {info.format} image (corrupt data, or a variant it lacks)")
    if img.shape[:2] != (height, width):  # the header checked is not the image decoded: trust neither
        raise error(f"{where}: header says {width}x{height} but it decodes to {img.shape[1]}x{img.shape[0]}")
    if img.dtype == np.uint8:
        arr, bits = img.astype(np.float32) / 255.0, 8
    elif img.dtype == np.uint16:
        arr, bits = img.astype(np.float32) / 65535.0, 16
    elif img.dtype in (np.float32, np.float64):
        if np.isnan(img).any():  # clipping keeps NaN: it would reach the model and come out black
            bad = int(np.isnan(img).reshape(*img.shape[:2], -1).any(axis=2).sum())
            raise error(f"{where}: {bad} pixels are NaN (a float image with missing data); fill them first")
        arr, bits = np.clip(img.astype(np.float32), 0.0, 1.0), 16  # more than 8 bits: kept as 16 on output
    else:
        raise error(f"{where}: unsupported pixel type {img.dtype}")
    return orient(arr, info.orientation), info, bits


@dataclass(frozen=True)
class LoadedImage:
    """An image with what it carries besides its colour (`read_image_full`): `rgb` (H, W, 3) float32 in [0, 1]
    (grey replicated, as read_image gives it), `alpha` (H, W) float32 in [0, 1] or None, `bits` 8 or 16 (16 for
    16-bit and float files), `grey` (one channel, grey + alpha, or colour channels all equal) and `format`
    (Pillow's name from the header: PNG, JPEG, WEBP, TIFF, ...)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: int
    grey: bool
    format: str


def read_image_full(path: str | Path) -> LoadedImage:
    """`read_image` with the alpha channel, bit depth and greyness kept (infer.py's image options); the same
    header checks before anything is decoded. Grey + alpha files come from OpenCV as BGRA with equal channels."""
    path = Path(path)
    _check_is_file(path)
    arr, info, bits = _decode_unchanged(path.read_bytes(), str(path), ImageReadError)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 2:  # grey + alpha (a TIFF may decode so): as OpenCV gives a grey + alpha PNG
        arr = arr[:, :, [0, 0, 0, 1]]
    alpha = np.ascontiguousarray(arr[:, :, 3]) if arr.shape[2] == 4 else None
    rgb = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[:, :, 2::-1]
    grey = bool(arr.shape[2] == 1 or (np.array_equal(rgb[..., 0], rgb[..., 1])
                                      and np.array_equal(rgb[..., 1], rgb[..., 2])))
    return LoadedImage(np.ascontiguousarray(rgb), alpha, bits, grey, info.format)


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W, ...) array as EXIF `orientation` says to show it (Pillow's ImageOps.exif_transpose)."""
    ops = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # rotated 180
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # shown rotated 90 degrees clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),  # shown rotated 90 degrees anticlockwise
    }
    return ops[orientation](img) if orientation in ops else img


# ------------------------------------------------------------------------------------------------ checking


def _inspect(
    fp: BinaryIO, size: int, where: str, error: type[Exception], thorough: bool
) -> tuple[ImageInfo, tuple[int, int]]:
    """(info, stored (height, width)) of the image in `fp` (`size` bytes), or `error` naming `where`."""
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb warning (the cap below decides) and its "corrupt EXIF" warnings
            warnings.simplefilter("ignore")
            im = Image.open(fp)
    except Image.DecompressionBombError as err:
        raise error(_bomb_message(where, str(err))) from None
    except UnidentifiedImageError:
        return _inspect_unidentified(fp, size, where, error)
    except Exception as err:  # noqa: BLE001 - plugins raise SyntaxError, struct.error, OSError, ...
        raise error(f"{where}: not an image, or a corrupt one (its header cannot be read: {_brief(err)})") from None
    try:
        with im:
            width, height = im.size
            fmt = im.format or "image"
            _check_cap(where, width, height, error)
            _check_still(im, where, fmt, error)
            orientation = _orientation(im)
            expected_end = _data_end(im, width, height)
        problem = _truncation(fp, size, fmt, expected_end, thorough)
    except error:
        raise
    except Exception as err:  # noqa: BLE001 - a crafted header can trip any plugin; name the file, not the plugin
        raise error(f"{where}: not an image, or a corrupt one (its header cannot be read: {_brief(err)})") from None
    if problem:
        raise error(f"{where}: {problem}; the file is incomplete (re-copy or re-export it)")
    shown = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return ImageInfo(shown[0], shown[1], fmt, orientation), (height, width)


def _brief(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no detail"
    return f"{type(err).__name__}: {text[:200]}"


def _check_cap(where: str, width: int, height: int, error: type[Exception]) -> None:
    cap = _max_pixels
    if width <= 0 or height <= 0:
        raise error(f"{where}: header says {width}x{height}, an empty image")
    if cap is not None and width * height > cap:
        raise error(
            f"{where}: {width}x{height} image ({width * height / 1e6:.1f} MP) is above the pixel cap of "
            f"{cap / 1e6:g} MP; if it is genuine, raise it (max_pixels={_round_up(width * height)}, or null for no cap)"
        )


def _round_up(pixels: int) -> int:
    return math.ceil(pixels / 1e6) * 1_000_000


def _bomb_message(where: str, text: str) -> str:
    """Pillow refused the header itself (above 2 x Image.MAX_IMAGE_PIXELS): say so in our terms."""
    m = re.search(r"\((\d+) pixels\)", text)
    pixels = int(m.group(1)) if m else None
    cap = _max_pixels
    if pixels is not None and (cap is None or pixels > cap):
        limit = "no cap set, but Pillow's own limit" if cap is None else f"the pixel cap of {cap / 1e6:g} MP"
        return (f"{where}: header says {pixels} pixels ({pixels / 1e6:.1f} MP), above {limit}; if it is genuine, "
                f"raise max_pixels (max_pixels={_round_up(pixels)}, or null for no cap)")
    return f"{where}: Pillow refuses its size as a possible decompression bomb ({text.split(',')[0]})"


def _check_still(im: Image.Image, where: str, fmt: str, error: type[Exception]) -> None:
    # an MPO is a JPEG carrying a preview or a second view (many cameras write one): its first image is the photo
    if fmt == "MPO" or not getattr(im, "is_animated", False):
        return
    try:
        frames = f"{im.n_frames} frames"
    except Exception:  # noqa: BLE001 - counting walks the file; a damaged tail still means "animated"
        frames = "several frames"
    if fmt == "TIFF":
        raise error(f"{where}: a multi-page TIFF with {frames.replace('frames', 'pages')}; only still images are "
                    "read: save the page you want as its own file, or each page into a folder")
    raise error(
        f"{where}: an animated {fmt} with {frames}; only still images are read: extract the frames into a folder "
        f"(e.g. ffmpeg -i {Path(where).name} frames/%06d.png) and give the folder"
    )


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag still to apply (1 when absent or unreadable, as viewers treat it)."""
    if im.format == "TIFF":
        return 1  # both decoders orient TIFFs themselves: Pillow reports the shown size, OpenCV returns it so
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if im.format == "PNG":
                # PngImageFile.getexif() decodes the whole image when no eXIf chunk came before the pixels
                if "exif" not in im.info:
                    return 1
                exif = Image.Exif()
                exif.load(im.info["exif"])
            else:
                exif = im.getexif()
            value = exif.get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block does not make a damaged image
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


# bits per pixel of Pillow's uncompressed raw modes (BMP, PPM/PGM, ...)
_RAW_BITS = {"1": 1, "1;I": 1, "L": 8, "P": 8, "RGB": 24, "BGR": 24, "RGBA": 32, "BGRA": 32, "BGRX": 32,
             "RGBX": 32, "CMYK": 32, "LA": 16, "I;16": 16, "I;16B": 16, "RGB;16B": 48}


def _data_end(im: Image.Image, width: int, height: int) -> int | None:
    """The byte offset the pixel data must reach, for formats whose header says where it lies: uncompressed raw
    tiles (BMP, PPM/PGM) and TIFF strips or tiles. None when unknown (compressed formats are checked by their
    own end marker)."""
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        for offsets_tag, counts_tag in ((273, 279), (324, 325)):
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if offsets is not None and counts is not None:
                offsets = offsets if isinstance(offsets, tuple) else (offsets,)
                counts = counts if isinstance(counts, tuple) else (counts,)
                return max((int(o) + int(c) for o, c in zip(offsets, counts)), default=None)
        return None
    end = None
    for tile in im.tile:
        if tile.codec_name != "raw" or tile.extents is None:
            continue
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        rawmode = args[0] if args else None
        stride = int(args[1]) if len(args) > 1 and args[1] else 0
        if not stride:
            bits = _RAW_BITS.get(str(rawmode))
            if bits is None:
                return None
            stride = (width * bits + 7) // 8
        rows = tile.extents[3] - tile.extents[1]
        end = max(end or 0, tile.offset + abs(stride) * rows)
    return end


def _truncation(fp: BinaryIO, size: int, fmt: str, expected_end: int | None, thorough: bool) -> str | None:
    """Why the file is incomplete, or None."""
    if fmt == "PNG" and not _png_reaches_iend(fp, size, thorough):
        return "truncated PNG: it ends before its IEND chunk"
    if fmt in ("JPEG", "MPO") and not _jpeg_reaches_eoi(fp, size, thorough):
        return "truncated JPEG: it ends before its end-of-image marker"
    if fmt == "WEBP":
        fp.seek(4)
        riff = int.from_bytes(fp.read(4), "little") + 8
        if size < riff:
            return f"truncated WebP: {size} bytes, its header says {riff}"
    if expected_end is not None and size < expected_end:
        return f"truncated {fmt}: {size} bytes, its pixel data reaches byte {expected_end}"
    return None


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole IEND chunk: no data, a fixed CRC


def _png_reaches_iend(fp: BinaryIO, size: int, thorough: bool = True) -> bool:
    """Walk the chunk headers (seeking past the data, which libpng checksums when decoding) up to IEND. Quick form
    (the up-front check of a training set): a file that ends with the IEND chunk passes without the walk, which
    would touch every page of the file (IDAT chunks are ~8 KB), i.e. read the whole data set before step 1."""
    if not thorough and size >= 20:
        fp.seek(size - 12)
        if fp.read(12) == _PNG_IEND:
            return True
    pos = 8
    while pos + 12 <= size:
        fp.seek(pos)
        head = fp.read(8)
        end = pos + 12 + int.from_bytes(head[:4], "big")
        if end > size:
            return False
        if head[4:8] == b"IEND":
            return True
        pos = end
    return False


# a marker inside entropy-coded data: 0xFF followed by anything but a stuffed 0x00, a restart marker or more fill
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_reaches_eoi(fp: BinaryIO, size: int, thorough: bool) -> bool:
    """Whether the marker walk reaches end-of-image (EOI). Quick form: a file whose last two bytes are EOI (0xFFD9
    cannot occur inside entropy-coded data, and a cut inside the headers fails Pillow's header read); otherwise,
    or when `thorough`, the segments and scans are walked, which accepts data after EOI (motion photos append a
    video there)."""
    if not thorough:
        fp.seek(max(size - 2, 0))
        if fp.read(2) == b"\xff\xd9":
            return True
    fp.seek(0)
    data = fp.read()
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:  # stray bytes between segments: libjpeg skips to the next marker, so do we
            i = data.find(b"\xff", i)
            if i < 0:
                return False
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return False
        marker = data[i]
        i += 1
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # markers without a length
            continue
        if i + 2 > n:
            return False
        i += int.from_bytes(data[i : i + 2], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            found = _JPEG_MARKER.search(data, min(i, n))
            if found is None:
                return False
            i = found.start()
    return False


def _inspect_unidentified(
    fp: BinaryIO, size: int, where: str, error: type[Exception]
) -> tuple[ImageInfo, tuple[int, int]]:
    """Pillow does not know the file. OpenCV decodes a few TIFF variants Pillow cannot parse (3-channel float32),
    so a TIFF's size and page count are read from its first directories here; anything else is refused: handing
    OpenCV an unchecked header would let it allocate whatever the header claims."""
    fp.seek(0)
    head = fp.read(16)
    tiff = _tiff_header(fp, size) if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+") else None
    if tiff is None:
        kind = "a TIFF whose header cannot be read" if head[:2] in (b"II", b"MM") else "not an image"
        raise error(f"{where}: {kind} (no format this project reads recognises its first bytes)")
    width, height, pages = tiff
    _check_cap(where, width, height, error)
    if pages > 1:
        raise error(f"{where}: a multi-page TIFF with {pages} pages; only still images are read: save the page you "
                    "want as its own file, or extract the pages into a folder")
    return ImageInfo(width, height, "TIFF"), (height, width)


def _tiff_header(fp: BinaryIO, size: int) -> tuple[int, int, int] | None:
    """(width, height, pages) from a TIFF's first image directory (classic or BigTIFF), None if unreadable."""
    fp.seek(0)
    head = fp.read(16)
    order = "little" if head[:2] == b"II" else "big"
    big = int.from_bytes(head[2:4], order) == 43
    off_size, count_size, entry_size = (8, 8, 20) if big else (4, 2, 12)
    first = int.from_bytes(head[8:16] if big else head[4:8], order)
    offset, pages, seen, dims = first, 0, set(), None
    while offset and offset not in seen and pages < 100_000 and offset + count_size <= size:
        seen.add(offset)
        fp.seek(offset)
        count = int.from_bytes(fp.read(count_size), order)
        block = fp.read(count * entry_size)
        if len(block) < count * entry_size:
            return None
        if dims is None:
            values = {}
            for k in range(count):
                entry = block[k * entry_size : (k + 1) * entry_size]
                tag, kind = int.from_bytes(entry[:2], order), int.from_bytes(entry[2:4], order)
                if tag in (256, 257):
                    value_bytes = {3: 2, 4: 4, 16: 8}.get(kind)  # SHORT, LONG, LONG8
                    if value_bytes is None:
                        return None
                    value_at = 4 + off_size  # the value field follows tag, type and count
                    values[tag] = int.from_bytes(entry[value_at : value_at + value_bytes], order)
            if 256 not in values or 257 not in values:
                return None
            dims = (values[256], values[257])
        pages += 1
        offset = int.from_bytes(fp.read(off_size), order)
    return None if dims is None else (*dims, pages)


def decode_hf_image(payload: Any, where: str) -> np.ndarray:
    """A Hugging Face `datasets.Image(decode=False)` value ({"bytes", "path"}) with read_image's rules. Decoding
    it ourselves, not through `datasets` (Pillow), puts the header checks (pixel cap, truncation, animation)
    before any pixel is decoded."""
    if isinstance(payload, dict):
        if payload.get("bytes"):
            return decode_image(payload["bytes"], where)
        if payload.get("path"):
            return read_image(payload["path"])
    raise ImageReadError(f"{where}: not an encoded image (got {type(payload).__name__})")


def from_pil(image: Image.Image, where: str = "image") -> np.ndarray:
    """A decoded PIL image as (H, W, 3) float32 RGB, with read_image's rules (the pixel cap too: Pillow's own limit
    guarded the decode; this stops the float copy). Our "hf:" sources stay encoded and use decode_hf_image."""
    _check_cap(where, image.width, image.height, ImageReadError)
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
    return _encode_to(path, path.suffix.lower(), arr[:, :, ::-1], [],  # OpenCV codes BGR
                      f"cannot encode an image with suffix {path.suffix!r}")


def _encode_to(path: Path, ext: str, arr: np.ndarray, params: list[int], refusal: str) -> Path:
    """OpenCV-encode `arr` as `ext` and write it to `path` atomically; `refusal` names what failed."""
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), params)
    except cv2.error:
        ok = False  # this OpenCV build lacks the encoder
    if not ok:
        raise ValueError(f"{path}: {refusal}")
    atomic_write_bytes(path, buf.tobytes())
    return path


# suffix -> what write_image_as writes; only PNG holds 16 bits, JPEG no alpha
WRITE_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
# ITU-R BT.601 luma, the weights of Pillow's convert("L") and OpenCV's cvtColor: a grey file a viewer would show
LUMA_601 = np.array([0.299, 0.587, 0.114], np.float32)


def write_image_as(
    path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None, *, bits: int = 8, grey: bool = False,
    quality: int = 95,
) -> Path:
    """Write (H, W, 3) float RGB in [0, 1], atomically, as the suffix says (WRITE_FORMATS): `alpha` (H, W) in
    [0, 1] as a fourth channel (PNG, WebP), `bits` 8 or 16 (PNG only), `grey`: one channel, the BT.601 luminance
    of `rgb` (with alpha: RGBA with equal channels, as OpenCV writes no grey + alpha PNG), `quality` 1-100 for
    JPEG and WebP. Values are clipped and rounded to the depth."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    rgb = np.asarray(rgb, dtype=np.float32)
    if fmt is None:
        raise ValueError(f"{path}: cannot write suffix {path.suffix!r}; use one of {', '.join(WRITE_FORMATS)}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: write_image_as takes an (H, W, 3) RGB array, got shape {rgb.shape}")
    if alpha is not None and (fmt == "jpg" or np.shape(alpha) != rgb.shape[:2]):
        raise ValueError(f"{path}: " + ("JPEG has no alpha channel" if fmt == "jpg" else
                                        f"alpha of shape {np.shape(alpha)} for an image of {rgb.shape[:2]}"))
    if bits not in (8, 16) or (bits == 16 and fmt != "png"):
        raise ValueError(f"{path}: {bits}-bit output; only 8 bits, or 16 for PNG")
    if grey:
        rgb = (rgb @ LUMA_601)[:, :, None]
        if alpha is not None:
            rgb = np.repeat(rgb, 3, axis=2)
    channels = rgb[:, :, ::-1] if rgb.shape[2] == 3 else rgb  # OpenCV codes BGR(A)
    if alpha is not None:
        channels = np.concatenate([channels, np.asarray(alpha, np.float32)[:, :, None]], axis=2)
    top, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
    arr = np.round(np.clip(np.nan_to_num(channels), 0.0, 1.0) * top).astype(dtype)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    params = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)], "webp": [cv2.IMWRITE_WEBP_QUALITY, int(quality)],
              "png": []}[fmt]
    return _encode_to(path, f".{fmt}", arr, params,
                      f"cannot encode a {fmt.upper()} image here (OpenCV lacks the encoder)")


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


def uncompact(img: np.ndarray) -> np.ndarray:
    """A photo kept by `compact` as float32 in [0, 1] again."""
    return img.astype(np.float32) / np.float32(255) if img.dtype == np.uint8 else img


def compact(img: np.ndarray) -> np.ndarray:
    """An 8-bit photo as uint8 (a quarter of the memory, for caches); deeper ones stay float32."""
    levels = np.round(img * 255)
    return levels.astype(np.uint8) if np.array_equal(uncompact(levels.astype(np.uint8)), img) else img
