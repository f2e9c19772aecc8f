"""Streamed training data: images packed in tar shards (WebDataset layout), or Hugging Face streaming.

Layout: plain tar files `shard-000000.tar`, ... whose members are `<key>.<ext>` (`.png`, `.jpg`, ...), members
of one sample consecutive, keys without dots, as WebDataset writes and reads them; only the stdlib is needed.

Write:  python -m restoregan.data.shards write SRC OUT_DIR --shard-size 1000
        (SRC: a folder, "skimage", "hf:<dataset or imagefolder dir>", "hf-stream:<dataset>")
Read:   any HRImageDataset family (SR, colorization, film) with source "shards:<spec>" or "hf-stream:<dataset>";
        TrainingDataModule wraps it in `StreamingDataset`, which reads the images and lets the dataset turn each into
        an item (`HRImageDataset.streamed_item`), so the pairing code is the map-style one.
<spec>: one or more of a brace pattern (`/data/train-{000000..000099}.tar`), a glob, a folder (its *.tar) or a
file, joined by "::".

Splitting: ranks x DataLoader workers are "consumers"; each takes every n-th shard, or, with fewer shards than
consumers, reads them all and keeps every n-th sample, so each sample is read once per pass over the data.
Training streams repeat (a new seeded shard order and shuffle each pass) and never end: ranks then take the same
number of steps even if their shares differ, which DDP needs; `max_steps` ends the run. Validation streams are
one pass, in order.
"""

from __future__ import annotations

import argparse
import glob
import io
import itertools
import re
import sys
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from restoregan.atomic import atomic_write
from restoregan.data.datasets import HRImageDataset
from restoregan.data.io import IMAGE_SUFFIXES, ImageReadError
from restoregan.data.io import decode_image as io_decode

SHARD_NAME = "shard-{:06d}.tar"
_IMAGE_EXTS = {s[1:] for s in IMAGE_SUFFIXES}


class ShardError(ImageReadError):
    """A shard (or one of its members) cannot be read; the message starts with the shard's path."""


# ---------------------------------------------------------------------------------------------- shard lists


def expand_braces(pattern: str) -> list[str]:
    """`a-{000..002}.tar` -> a-000.tar, a-001.tar, a-002.tar (zero padding kept); `{x,y}` lists; several braces."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return [pattern]
    body, head, tail = m.group(1), pattern[: m.start()], pattern[m.end() :]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        if hi < lo:
            raise ValueError(f"{pattern}: empty range {{{body}}}")
        width = len(rng.group(1))
        items = [str(i).zfill(width) for i in range(lo, hi + 1)]
    else:
        items = body.split(",")
    return [out for item in items for out in expand_braces(head + item + tail)]


def resolve_shards(spec: str) -> list[Path]:
    """The shard files of a "shards:" spec (prefix optional), checked to exist, in the order given."""
    spec = spec.removeprefix("shards:")
    shards: list[Path] = []
    for part in filter(None, spec.split("::")):
        for item in expand_braces(part):
            if glob.has_magic(item):
                found = sorted(Path(p) for p in glob.glob(item))
                if not found:
                    raise ShardError(f"{item}: no shard matches this pattern")
                shards += found
            elif Path(item).is_dir():
                found = sorted(Path(item).glob("*.tar"))
                if not found:
                    raise ShardError(f"{item}: folder holds no .tar shards")
                shards += found
            elif Path(item).is_file():
                shards.append(Path(item))
            else:
                raise ShardError(f"{item}: no such shard")
    if not shards:
        raise ShardError(f"shards:{spec}: names no shard files")
    return shards


# ------------------------------------------------------------------------------------------- reading shards


def iter_samples(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) per sample, reading the tar sequentially (no seeks: works on pipes and slow disks)."""
    key, parts = None, {}
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                if "." not in base or base.startswith("__"):
                    continue  # not a sample part (WebDataset ignores such members too)
                stem, ext = base.split(".", 1)
                k = member.name[: len(member.name) - len(base)] + stem
                if k != key and key is not None:
                    yield key, parts
                    parts = {}
                key = k
                f = tar.extractfile(member)
                parts[ext.lower()] = f.read() if f else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ShardError(f"{shard}: corrupt or truncated tar ({type(err).__name__}: {err})") from None
    if key is not None:
        yield key, parts


def image_part(shard: Path, key: str, parts: dict[str, bytes]) -> tuple[str, bytes]:
    """The sample's image member (`<key>.png`, `.jpg`, ...) as (member name, bytes)."""
    for ext, data in parts.items():
        if ext in _IMAGE_EXTS:
            return f"{key}.{ext}", data
    raise ShardError(
        f"{shard}: sample {key!r} holds no image member (has {sorted(parts)}; expected one of {sorted(_IMAGE_EXTS)})"
    )


def decode_image(data: bytes, where: str) -> np.ndarray:
    """io.read_image's decoding of a member's bytes, so a shard gives exactly the pixels of the files it was
    written from; errors are ShardErrors naming shard and member."""
    return io_decode(data, where, ShardError)


def shuffled(items: Iterable[Any], buffer: int, rng: np.random.Generator) -> Iterator[Any]:
    """Approximate shuffle in bounded memory: each new item takes the place of a random one, which is yielded."""
    pool: list[Any] = []
    for item in items:
        if len(pool) < buffer:
            pool.append(item)
            continue
        j = int(rng.integers(buffer))
        yield pool[j]
        pool[j] = item
    rng.shuffle(pool)
    yield from pool


# ------------------------------------------------------------------------------------------------ streaming


class StreamingDataset(IterableDataset):
    """Items of `dataset` (an HRImageDataset built with a "shards:" or "hf-stream:" source) read as a stream.

    shuffle_buffer: samples (still encoded) held for shuffling per consumer; 0 keeps the stored order.
    infinite: repeat passes forever (default: for training datasets).
    rank / world_size: this process's place among the DDP processes; None = torch.distributed's, if initialised.
    Shard order and the buffer shuffle are seeded from dataset.seed (the run's `seed`) and the pass number.
    """

    def __init__(
        self,
        dataset: HRImageDataset,
        shuffle_buffer: int = 256,
        infinite: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if getattr(dataset, "stream", None) is None:
            raise ValueError(f"{type(dataset).__name__}: not built from a streamed source (shards:..., hf-stream:...)")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.dataset, self.source = dataset, dataset.stream
        self.shuffle_buffer = shuffle_buffer if dataset.train else 0  # validation: same items every run
        self.infinite = dataset.train if infinite is None else infinite
        self.rank, self.world_size = rank, world_size
        self.shards: list[Path] = []
        self.hf = None
        if self.source.startswith("shards:"):
            self.shards = resolve_shards(self.source)  # fail at start-up, by name
        else:
            self.hf = load_hf_stream(self.source.removeprefix("hf-stream:"), dataset.hf_split, dataset.hf_column)

    def consumer(self) -> tuple[int, int]:
        """(index, count) of this reader among all ranks x DataLoader workers."""
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            dist = torch.distributed
            initialised = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if initialised else (0, 1)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict]:
        k, n = self.consumer()
        for epoch in itertools.count() if self.infinite else range(1):
            encoded = self._encoded(epoch, k, n)
            if self.shuffle_buffer:
                encoded = shuffled(encoded, self.shuffle_buffer, np.random.default_rng([self.dataset.seed, epoch, k]))
            empty = True
            for name, where, payload in encoded:
                empty = False
                image = self._decode(where, payload)
                # zlib.crc32 of the name, not a running count: validation draws stay fixed whatever the split
                yield self.dataset.streamed_item(image, name, zlib.crc32(name.encode()))
            if empty:  # an endless stream would otherwise spin here forever
                if get_worker_info() is not None:
                    return  # a DataLoader worker without a share: the others carry on
                raise ValueError(
                    f"{self.source}: reader {k} of {n} (DDP ranks x DataLoader workers) got no samples; "
                    "the stream holds fewer samples (or shards) than readers"
                )

    def _encoded(self, epoch: int, k: int, n: int) -> Iterator[tuple[str, str, Any]]:
        """(name, where, encoded image) of this consumer's samples in one pass."""
        if self.hf is not None:
            from datasets.distributed import split_dataset_by_node

            # split over ranks here; inside a DataLoader worker `datasets` itself gives each worker its shards
            info = get_worker_info()
            workers = info.num_workers if info is not None else 1
            rank, world, worker = k // workers, n // workers, k % workers
            part = split_dataset_by_node(self.hf, rank=rank, world_size=world)
            for i, example in enumerate(part):
                name = f"{self.source}[{rank}/{world}:{worker}:{i}]"
                yield name, name, example[self.dataset.hf_column]
            return
        order = list(self.shards)
        if self.shuffle_buffer:  # the same order on every consumer (shared seed), so the split stays exact
            np.random.default_rng([self.dataset.seed, epoch]).shuffle(order)
        whole = len(order) >= n
        mine = order[k::n] if whole else order
        count = 0
        for shard in mine:
            for key, parts in iter_samples(shard):
                if whole or count % n == k:
                    member, data = image_part(shard, key, parts)
                    yield key, f"{shard}: member {member}", data
                count += 1

    def _decode(self, where: str, payload: Any) -> np.ndarray:
        if self.hf is None:
            return decode_image(payload, where)
        from restoregan.data.io import decode_hf_image

        return decode_hf_image(payload, where)  # as the map-style "hf:" source does: header checked first


def load_hf_stream(name: str, split: str, column: str):
    """A streamed Hugging Face dataset (a local imagefolder dir or a hub name), images left encoded so the
    shuffle buffer holds bytes, not decoded pixels."""
    import datasets

    if Path(name).is_dir():
        ds = datasets.load_dataset("imagefolder", data_dir=name, split=split, streaming=True)
    else:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    if ds.features is not None and column not in ds.features:
        raise ValueError(f"hf-stream:{name}: no column {column!r} (has {sorted(ds.features)}); set hf_image_column")
    return ds.cast_column(column, datasets.Image(decode=False))


# ------------------------------------------------------------------------------------------------- writing


def source_images(
    source: str, hf_split: str = "train", hf_column: str = "image"
) -> tuple[Iterator[tuple[str, bytes]], int | None]:
    """(stem, encoded bytes) of each image of an HRImageDataset source, unchanged (no re-encoding), and the
    count when known."""
    if source.startswith(("hf:", "hf-stream:")):
        import datasets

        name = source.split(":", 1)[1]
        if source.startswith("hf:"):
            ds = HRImageDataset._load_hf(name, hf_split).cast_column(hf_column, datasets.Image(decode=False))
            total = len(ds)
        else:
            ds, total = load_hf_stream(name, hf_split, hf_column), None

        def hf_items() -> Iterator[tuple[str, bytes]]:
            for i, example in enumerate(ds):
                value = example[hf_column]
                data = value["bytes"] if value.get("bytes") else Path(value["path"]).read_bytes()
                yield (Path(value["path"]).stem if value.get("path") else f"{i}"), data

        return hf_items(), total
    paths = HRImageDataset._resolve_paths(source)
    return ((p.stem, p.read_bytes()) for p in paths), len(paths)


def image_ext(data: bytes, where: str) -> str:
    """The file extension of encoded image bytes, from their header (rejects non-images before packing)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").lower()
    except Exception as err:
        raise ImageReadError(f"{where}: not an image ({type(err).__name__}: {err})") from None
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)
    if ext not in _IMAGE_EXTS:
        raise ImageReadError(f"{where}: {fmt or 'unknown'} images are not supported in shards")
    return ext


def write_shards(
    source: str, out_dir: str | Path, shard_size: int = 1000, hf_split: str = "train",
    hf_image_column: str = "image", overwrite: bool = False, progress: bool = True,
) -> list[Path]:
    """Pack the images of `source` into out_dir/shard-000000.tar, ... (`shard_size` images each), each written
    atomically; member bytes are the original files', so decoding gives the same pixels."""
    from tqdm import tqdm

    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    old = sorted(out.glob("shard-*.tar"))
    if old and not overwrite:
        raise FileExistsError(f"{out}: already holds shards ({old[0].name}, ...); pass --overwrite to replace them")
    images, total = source_images(source, hf_split, hf_image_column)
    written: list[Path] = []
    batch: list[tuple[str, bytes]] = []

    def flush() -> None:
        path = out / SHARD_NAME.format(len(written))
        atomic_write(path, lambda tmp: _write_tar(tmp, batch))
        written.append(path)
        batch.clear()

    with tqdm(images, total=total, desc=f"packing {source}", unit="img", disable=not progress) as bar:
        for index, (stem, data) in enumerate(bar):
            key = f"{index:09d}_" + re.sub(r"[^\w-]", "_", stem)[:80]  # unique, and no dot (the key ends there)
            batch.append((f"{key}.{image_ext(data, f'{source}: {stem}')}", data))
            if len(batch) == shard_size:
                flush()
    if batch:
        flush()
    for stale in set(old) - set(written):
        stale.unlink()  # left by an earlier, larger write: a glob or folder spec would read it
    return written


def _write_tar(path: str, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o444, 0  # fixed metadata: same input, same bytes
            tar.addfile(info, io.BytesIO(data))


def shard_spec(shards: list[Path]) -> str:
    """The "shards:" source naming these consecutive shards."""
    last = len(shards) - 1
    if last == 0:
        return f"shards:{shards[0]}"
    return f"shards:{shards[0].parent}/shard-{{{0:06d}..{last:06d}}}.tar"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restoregan.data.shards", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="pack images into tar shards")
    w.add_argument("source", help='a folder, "skimage[:split]", "hf:<dataset or imagefolder>", "hf-stream:<dataset>"')
    w.add_argument("out_dir")
    w.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    w.add_argument("--hf-split", default="train")
    w.add_argument("--hf-image-column", default="image")
    w.add_argument("--overwrite", action="store_true", help="replace the shards already in out_dir")
    args = parser.parse_args(argv)
    try:
        shards = write_shards(
            args.source, args.out_dir, args.shard_size, args.hf_split, args.hf_image_column, args.overwrite
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    # Hydra's override grammar needs the braces quoted; the shell then needs the whole argument quoted
    print(
        f"wrote {len(shards)} shard(s) to {args.out_dir}; train on them with\n"
        f"  python train.py ... data.train.source=shards:{args.out_dir}\n"
        f"or, naming them:  \"data.train.source='{shard_spec(shards)}'\""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
