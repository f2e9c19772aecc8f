"""Paired degraded/clean datasets for super-resolution.

`HRImageDataset` degrades clean images on the fly (folders, file lists, the scikit-image photos, Hugging Face
datasets); `PairedImageDataset` reads LR/HR pairs from two folders. Items are
`{"lq": (3, h, w), "gt": (3, h*scale, w*scale), "name": str}` float tensors in [0, 1].

Training items are random (crop, flips, 90-degree rotations, degradation parameters); TrainingDataModule's
loader makes each a pure function of (seed, epoch, index) (restoregan.data.rng), so worker count and restarts do
not change them. Validation items are a pure function of (seed, index).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import skimage
from torch.utils.data import Dataset

from restoregan.data.io import (
    ImageReadError, check_images, decode_hf_image, inspect_image, list_images, read_image, to_tensor,
)
from restoregan.data.rng import ProcessRandom

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Sources read as a stream by restoregan.data.shards.StreamingDataset rather than indexed: tar shards, and
# Hugging Face datasets too large to download ("hf-stream:" = load_dataset(..., streaming=True)).
STREAM_PREFIXES = ("shards:", "hf-stream:")


def is_streamed(source: object) -> bool:
    return isinstance(source, str) and source.startswith(STREAM_PREFIXES)

SKIMAGE_DIR = Path(skimage.__file__).parent / "data"
# The real colour photographs shipped in the scikit-image wheel. Grey photos (camera, moon, brick, ...),
# charts, logos, synthetic phantoms and tiny images are left out. The two motorcycle views are a stereo pair,
# so both stay on the training side; validation photos never appear in training.
SKIMAGE_TRAIN = [
    "astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png",
    "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
]
SKIMAGE_VAL = ["chelsea.png", "coffee.png"]


def skimage_photos(split: str = "train") -> list[Path]:
    """The scikit-image wheel's real colour photos: 'train', 'val' (held out) or 'all'."""
    splits = {"train": SKIMAGE_TRAIN, "val": SKIMAGE_VAL, "all": SKIMAGE_TRAIN + SKIMAGE_VAL}
    if split not in splits:
        raise ValueError(f"skimage split must be one of {sorted(splits)}, got {split!r}")
    names = splits[split]
    paths = [SKIMAGE_DIR / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ImageReadError(f"{missing[0]}: not found; this scikit-image install lacks its sample photos")
    return paths


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so both sides are multiples of `scale`, as the SR literature does."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) as read (EXIF orientation applied) from the header only; also rejects, early and by name, files
    that are not images, are truncated, animated or above the pixel cap (restoregan.data.io.inspect_image)."""
    info = inspect_image(path)
    return info.height, info.width


class HRImageDataset(Dataset):
    """Clean images degraded on the fly into (lq, gt) pairs.

    source: a folder, a list of image paths, "skimage" / "skimage:val" (the scikit-image photos), or
    "hf:<dataset name or local imagefolder dir>" (Hugging Face `datasets`; `hf_split`, `hf_image_column`), or a
    streamed one ("shards:<tar files>", "hf-stream:<dataset>"): then this object only turns images into items and
    restoregan.data.shards.StreamingDataset (which TrainingDataModule wraps it in) reads them; it has no len().
    crop_size: HR patch size (a multiple of scale); None in validation means the whole mod-cropped image.
    repeat: how many times the image list is walked per epoch (small photo sets make short epochs).
    cache: keep decoded images in memory (per worker); for small sets, where decoding dominates the step.
    optional_sources: folders added when they exist (with_optional); holdout_every: every N-th photo of each folder
    left out of training (holdout_split); skip_small: leave out, with a warning, photos smaller than the crop
    instead of failing (for folders of varied photos).
    """

    def __init__(
        self,
        source: str | Sequence[str | Path],
        degradation: Degradation,
        scale: int,
        crop_size: int | None = None,
        train: bool = True,
        repeat: int = 1,
        seed: int = 0,
        hf_split: str = "train",
        hf_image_column: str = "image",
        cache: bool = False,
        optional_sources: Sequence[str | Path] = (),
        holdout_every: int | None = None,
        skip_small: bool = False,
    ) -> None:
        if (optional_sources or holdout_every is not None) and isinstance(source, (str, Path)) and (
                is_streamed(source) or str(source).startswith("hf:")):
            if optional_sources:  # a stream or a Hugging Face dataset is read alone: what the user pointed at
                warnings.warn(f"{source}: read alone; optional_sources {list(map(str, optional_sources))} left out")
        elif optional_sources or holdout_every is not None:
            source = expand_sources(with_optional(source, optional_sources), holdout_every)
        if crop_size is not None and crop_size % scale:
            raise ValueError(f"crop_size {crop_size} must be a multiple of scale {scale}")
        if train and crop_size is None:
            raise ValueError("training needs a crop_size (HR patch size)")
        self.degradation, self.scale, self.crop_size = degradation, scale, crop_size
        self.skip_small = skip_small
        self.train, self.repeat, self.seed = train, repeat, seed
        self.hf = None
        self.stream: str | None = None
        self.hf_split, self.hf_column = hf_split, hf_image_column
        self._slot: tuple[np.ndarray, str] | None = None  # the streamed image being turned into an item
        if is_streamed(source):
            self.stream = str(source)
            self.names, self.paths = [], []
        elif isinstance(source, str) and source.startswith("hf:"):
            self.hf = self._encoded(self._load_hf(source[3:], hf_split), source, hf_image_column)
            self.names = [f"{source}[{i}]" for i in range(len(self.hf))]
            self.paths: list[Path] = []
        else:
            self.paths = self._resolve_paths(source)
            self.names = [p.name for p in self.paths]
            # every header read once, up front: a bad file fails here by name, not in a worker mid-run
            self.sizes = [(info.height, info.width) for info in check_images(self.paths)]
            self._check_sizes()
        self._random = ProcessRandom()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self._augment = A.Compose(
            [A.RandomCrop(crop_size, crop_size), A.HorizontalFlip(), A.RandomRotate90()] if train and crop_size else []
        )

    @staticmethod
    def _resolve_paths(source: str | Sequence[str | Path]) -> list[Path]:
        if isinstance(source, (str, Path)):
            text = str(source)
            if text in ("skimage", "skimage:train", "skimage:val", "skimage:all"):
                return skimage_photos(text.split(":")[1] if ":" in text else "train")
            return list_images(source)
        paths = [Path(p) for p in source]
        if not paths:
            raise ImageReadError("empty list of training images")
        for p in source:
            if is_streamed(str(p)):
                raise ValueError(
                    f"{p}: a streamed source cannot be combined with others in a list (set optional_sources=[])"
                )
        for p in paths:
            if not p.is_file():
                raise ImageReadError(f"{p}: no such file")
        return paths

    @staticmethod
    def _encoded(ds: Any, source: str, column: str) -> Any:
        """The dataset with its image column left encoded: decode_hf_image checks each header first."""
        import datasets

        if column not in ds.features:
            raise ValueError(f"{source}: no column {column!r} (has {sorted(ds.features)}); set hf_image_column")
        if not isinstance(ds.features[column], datasets.Image):
            raise ValueError(f"{source}: column {column!r} holds {type(ds.features[column]).__name__}, not images")
        return ds.cast_column(column, datasets.Image(decode=False))

    @staticmethod
    def _load_hf(name: str, split: str):
        import datasets

        if Path(name).is_dir():
            return datasets.load_dataset("imagefolder", data_dir=name, split=split)
        return datasets.load_dataset(name, split=split)

    def whole_min_side(self) -> int:
        """The smallest side a whole validation image (crop_size None) can be scored at: SR validation takes
        SSIM-Y's 11x11 window inside a `scale`-pixel border crop."""
        return 11 + 2 * self.scale

    def _check_sizes(self) -> None:
        """Fail at start-up, by name, rather than in a DataLoader worker an hour in; with `skip_small`, training
        photos smaller than the crop are left out with one warning instead (folders of varied photos hold a few)."""
        if self.skip_small and self.crop_size is not None:
            small = [i for i, (h, w) in enumerate(self.sizes) if min(h - h % self.scale, w - w % self.scale)
                     < self.crop_size]
            if small:
                names = ", ".join(self.paths[i].name for i in small[:3]) + (f" and {len(small) - 3} more" if
                                                                            len(small) > 3 else "")
                warnings.warn(f"{names}: smaller than the crop {self.crop_size}x{self.crop_size}, left out of "
                              "training")
                dropped = set(small)
                keep = [i for i in range(len(self.paths)) if i not in dropped]
                if not keep:
                    raise ImageReadError(f"every training image is smaller than the crop {self.crop_size}x"
                                         f"{self.crop_size}; lower data.crop_size")
                self.paths = [self.paths[i] for i in keep]
                self.names = [self.names[i] for i in keep]
                self.sizes = [self.sizes[i] for i in keep]
        for path, (h, w) in zip(self.paths, self.sizes):
            h, w = h - h % self.scale, w - w % self.scale
            if self.crop_size is None:
                if min(h, w) < self.whole_min_side():
                    raise ImageReadError(
                        f"{path}: image is {h}x{w} (after cropping to a multiple of scale {self.scale}), too small "
                        f"to validate on: the metrics need {self.whole_min_side()} pixels a side; drop it"
                    )
            elif min(h, w) < self.crop_size:
                raise ImageReadError(
                    f"{path}: image is {h}x{w} (after cropping to a multiple of scale {self.scale}), "
                    f"smaller than the crop {self.crop_size}x{self.crop_size}; lower data.crop_size or drop it"
                )

    def __len__(self) -> int:
        if self.stream is not None:
            raise TypeError(
                f"{self.stream}: a streamed source has no length; read it through "
                "restoregan.data.shards.StreamingDataset (TrainingDataModule does)"
            )
        return len(self.names) * self.repeat

    def _read(self, i: int) -> np.ndarray:
        if self._cache is None or self._slot is not None:
            return self._decode(i)
        if i not in self._cache:
            self._cache[i] = self._decode(i)
        return self._cache[i]

    def _decode(self, i: int) -> np.ndarray:
        if self._slot is not None:
            arr, name = self._slot
        elif self.hf is None:
            return read_image(self.paths[i])
        else:
            arr, name = decode_hf_image(self.hf[i][self.hf_column], self.names[i]), self.names[i]
        h, w = arr.shape[0] - arr.shape[0] % self.scale, arr.shape[1] - arr.shape[1] % self.scale
        if self.crop_size and min(h, w) < self.crop_size:
            # checked here, not at start-up: a hub dataset or a stream may be too large to decode up front
            raise ImageReadError(
                f"{name}: image is {h}x{w} (after cropping to a multiple of scale {self.scale}), "
                f"smaller than the crop {self.crop_size}x{self.crop_size}"
            )
        return arr

    def __getitem__(self, index: int) -> dict:
        i = 0 if self._slot is not None else index % len(self.names)
        hr = mod_crop(self._read(i), self.scale)
        if self.train:
            rng = self._random.get()
            self._augment.set_random_seed(int(rng.integers(2**31)))
            hr = self._augment(image=hr)["image"]
        else:
            rng = np.random.default_rng([self.seed, index])  # same validation data on every run
            if self.crop_size:
                hr = center_crop(hr, self.crop_size)
        lq, gt = self._pair(np.ascontiguousarray(hr), rng)
        name = self._slot[1] if self._slot is not None else self.names[i]
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "name": name}

    def streamed_item(self, image: np.ndarray, name: str, index: int) -> dict:
        """The item `self[index]` would be if its image were `image`: subclasses' __getitem__, _decode and
        _pair overrides all apply, so every HRImageDataset family streams without its own code. `index` only
        seeds validation draws."""
        self._slot = (image, name)
        try:
            return self[index]
        finally:
            self._slot = None

    def _pair(self, hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) made from one augmented image; tasks whose target also changes override this."""
        return np.clip(self.degradation(hr, rng), 0, 1), hr


def holdout_split(paths: Sequence[Path], every: int | None, held_out: bool) -> list[Path]:
    """Every `every`-th photo of a folder (sorted by name, the first included) is held out: `held_out=False`
    keeps the others (training), True keeps only those (validation, benchmarks). None keeps all. A fixed
    rule, not a random draw, so training and evaluation agree on any machine without a stored list."""
    if every is None:
        return list(paths)
    if every < 2:
        raise ValueError(f"holdout_every must be at least 2 (or null), got {every}")
    ordered = sorted(paths, key=lambda p: p.name)
    return [p for i, p in enumerate(ordered) if (i % every == 0) == held_out]


def expand_sources(
    source: str | Sequence[str | Path], holdout_every: int | None = None, held_out: bool = False
) -> str | list[Path]:
    """A list may mix folders, "skimage[:split]" and files; HRImageDataset takes one source or a file list.
    holdout_every / held_out split each folder (see holdout_split); the scikit-image photos keep their named
    split and single files are taken as given."""
    if isinstance(source, (str, Path)):
        if holdout_every is None or not Path(source).is_dir():
            return str(source)
        source = [source]
    paths: list[Path] = []
    for item in source:
        text = str(item)
        if text.startswith("skimage"):
            paths += HRImageDataset._resolve_paths(text)
        elif Path(text).is_dir():
            paths += holdout_split(HRImageDataset._resolve_paths(text), holdout_every, held_out)
        elif text.startswith("hf:"):
            raise ValueError(f"{text}: a Hugging Face source cannot be combined with others in a list")
        else:
            paths.append(Path(text))
    return paths


def with_optional(source: str | Sequence[str | Path], optional: Sequence[str | Path]) -> str | list:
    """Add the folders of `optional` that exist (e.g. shared data on this machine); absent ones are skipped
    with a warning, so a config that uses them still runs anywhere."""
    present = [str(p) for p in optional if Path(p).is_dir()]
    for p in optional:
        if not Path(p).is_dir():
            warnings.warn(f"{p}: optional training photos not found; training without them")
    if not present:
        return source
    return [*([source] if isinstance(source, (str, Path)) else source), *present]


class PairedImageDataset(Dataset):
    """LR/HR pairs from two folders, matched by file stem (e.g. Set5's LR/ and HR/ folders).

    HR is mod-cropped to the scale; LR must then be exactly HR/scale. Training crops are aligned
    (the LR crop position times the scale); flips/rotations are applied to both with the same draw
    (numpy here: albumentations' targets must share one size).
    """

    def __init__(
        self,
        lr_dir: str | Path,
        hr_dir: str | Path,
        scale: int,
        crop_size: int | None = None,
        train: bool = True,
        repeat: int = 1,
        seed: int = 0,
    ) -> None:
        if crop_size is not None and crop_size % scale:
            raise ValueError(f"crop_size {crop_size} must be a multiple of scale {scale}")
        self.scale, self.crop_size, self.train, self.repeat, self.seed = scale, crop_size, train, repeat, seed
        hr_files = list_images(hr_dir)
        lr_by_stem = {p.stem: p for p in list_images(lr_dir)}
        missing = [hr for hr in hr_files if hr.stem not in lr_by_stem]
        if missing:  # pairing first: a wrong folder should say so, not report a size mismatch
            raise ImageReadError(f"{missing[0]}: no LR partner named {missing[0].stem}.* in {lr_dir}")
        self.pairs = [(lr_by_stem[hr.stem], hr) for hr in hr_files]
        for lr, hr in self.pairs:
            self._check_pair(lr, hr)
        self._random = ProcessRandom()

    def _check_pair(self, lr: Path, hr: Path) -> None:
        (hh, hw), (lh, lw) = image_size(hr), image_size(lr)
        hh, hw = hh - hh % self.scale, hw - hw % self.scale
        if (lh, lw) != (hh // self.scale, hw // self.scale):
            raise ImageReadError(
                f"{lr}: LR is {lh}x{lw} but its HR {hr} is {hh}x{hw} (mod-cropped), expected "
                f"{hh // self.scale}x{hw // self.scale} at scale {self.scale}"
            )
        if self.crop_size and min(hh, hw) < self.crop_size:
            raise ImageReadError(f"{hr}: image is {hh}x{hw}, smaller than the crop {self.crop_size}x{self.crop_size}")
        least = 11 + 2 * self.scale  # whole images: SSIM-Y's 11x11 window inside the scale-pixel border crop
        if not self.crop_size and min(hh, hw) < least:
            raise ImageReadError(f"{hr}: image is {hh}x{hw}, too small to validate on: the metrics need {least} "
                                 "pixels a side; drop it")

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def __getitem__(self, index: int) -> dict:
        lr_path, hr_path = self.pairs[index % len(self.pairs)]
        lq, gt = read_image(lr_path), mod_crop(read_image(hr_path), self.scale)
        s = self.scale
        if self.crop_size:
            lc = self.crop_size // s
            if self.train:
                rng = self._random.get()
                top, left = rng.integers(lq.shape[0] - lc + 1), rng.integers(lq.shape[1] - lc + 1)
            else:
                top, left = (lq.shape[0] - lc) // 2, (lq.shape[1] - lc) // 2
            lq = lq[top : top + lc, left : left + lc]
            gt = gt[top * s : (top + lc) * s, left * s : (left + lc) * s]
        if self.train:
            rng = self._random.get()
            if rng.random() < 0.5:
                lq, gt = lq[:, ::-1], gt[:, ::-1]
            k = int(rng.integers(4))
            lq, gt = np.rot90(lq, k), np.rot90(gt, k)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "name": hr_path.name}
