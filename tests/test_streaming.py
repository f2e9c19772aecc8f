"""Streamed data: tar shards (write, read back, split over workers and ranks, seeded shuffle, bad shards),
Hugging Face streaming of a local imagefolder, and a training run fed from shards."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cli_utils import photo_folder
from restoregan.data.colorize_dataset import ColorizationDataset
from restoregan.data.datasets import HRImageDataset
from restoregan.data.film_dataset import FilmDataset
from restoregan.data.io import read_image
from restoregan.data.shards import (
    ShardError, StreamingDataset, decode_image, expand_braces, image_part, iter_samples, main, resolve_shards,
    write_shards,
)
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def keep(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Identity degradation: items then show the pixels that were read."""
    return img


def mixed_folder(folder: Path) -> Path:
    """Images of the kinds read_image handles differently: 8-bit RGB PNG, JPEG, 16-bit RGB PNG, grey, RGBA."""
    photo_folder(folder, n=2)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "c_jpeg.jpg"), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "d_deep.png"), rng.integers(0, 65536, (36, 44, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "e.grey.png"), rng.integers(0, 256, (32, 40), dtype=np.uint8))  # a dot in the stem
    cv2.imwrite(str(folder / "f_alpha.png"), rng.integers(0, 256, (32, 32, 4), dtype=np.uint8))
    return folder


def tiny_shards(tmp: Path, n_images: int, shard_size: int) -> tuple[list[Path], list[str]]:
    """n_images 8x8 images packed into shards; returns the shards and the sample keys."""
    src = tmp / "src"
    src.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n_images):
        cv2.imwrite(str(src / f"img{i:02d}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    shards = write_shards(str(src), tmp / "shards", shard_size=shard_size, progress=False)
    return shards, [key for s in shards for key, _ in iter_samples(s)]


def stream(spec: str, seed: int = 0, train: bool = True, **kwargs) -> StreamingDataset:
    ds = HRImageDataset(spec, keep, scale=1, crop_size=4 if train else None, train=train, seed=seed)
    return StreamingDataset(ds, **{"infinite": False, **kwargs})


def names(dataset, num_workers: int = 0) -> list[str]:
    if num_workers == 0:
        return [item["name"] for item in dataset]
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return [item["name"] for item in loader]


def test_brace_patterns_expand_like_webdataset(tmp_path: Path) -> None:
    assert expand_braces("a-{008..010}.tar") == ["a-008.tar", "a-009.tar", "a-010.tar"]
    assert expand_braces("{x,y}-{0..1}") == ["x-0", "x-1", "y-0", "y-1"]
    (tmp_path / "nope-000000.tar").touch()
    with pytest.raises(ShardError, match="nope-000001.tar: no such shard"):
        resolve_shards(f"shards:{tmp_path}/nope-{{000000..000001}}.tar")


def test_written_shards_hold_exactly_the_source_pixels(tmp_path: Path, capsys) -> None:
    src = mixed_folder(tmp_path / "src")
    files = sorted(src.iterdir(), key=lambda p: p.name)
    assert main(["write", str(src), str(tmp_path / "out"), "--shard-size", "2"]) == 0
    assert "shard-{000000..000002}.tar" in capsys.readouterr().out
    shards = resolve_shards(f"shards:{tmp_path}/out/shard-{{000000..000002}}.tar")
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    samples = [(s, key, parts) for s in shards for key, parts in iter_samples(s)]
    assert [key for _, key, _ in samples] == [f"{i:09d}_{p.stem.replace('.', '_')}" for i, p in enumerate(files)]
    for (shard, key, parts), path in zip(samples, files):
        member, data = image_part(shard, key, parts)
        assert data == path.read_bytes()  # packed unchanged, not re-encoded
        assert np.array_equal(decode_image(data, member), read_image(path)), path.name
    # a second write into the same folder must not mix old and new shards silently
    assert main(["write", str(src), str(tmp_path / "out")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["write", str(src), str(tmp_path / "out"), "--overwrite"]) == 0
    assert [p.name for p in sorted((tmp_path / "out").glob("*.tar"))] == ["shard-000000.tar"]


@pytest.mark.timeout(120)  # an endless stream that stops yielding would hang, not fail
@pytest.mark.parametrize("n_shards", [5, 1])  # shards split over consumers / one shard split by sample
def test_workers_and_ranks_see_each_sample_once_per_pass(tmp_path: Path, n_shards: int) -> None:
    shards, keys = tiny_shards(tmp_path, n_images=10, shard_size=10 // n_shards)
    assert len(shards) == n_shards
    spec = f"shards:{tmp_path}/shards"
    assert sorted(names(stream(spec), num_workers=2)) == sorted(keys)
    per_rank = [names(stream(spec, rank=r, world_size=2)) for r in range(2)]
    assert all(per_rank) and sorted(per_rank[0] + per_rank[1]) == sorted(keys)
    both = [names(stream(spec, rank=r, world_size=2), num_workers=2) for r in range(2)]  # 4 consumers
    assert sorted(both[0] + both[1]) == sorted(keys)
    # training streams never end; each pass (re-shuffled) covers every sample once
    endless = iter(stream(spec, infinite=True, shuffle_buffer=4))
    seen = [next(endless)["name"] for _ in range(3 * len(keys))]
    for p in range(3):
        assert sorted(seen[p * len(keys) : (p + 1) * len(keys)]) == sorted(keys)


def test_buffer_shuffle_is_seeded(tmp_path: Path) -> None:
    _, keys = tiny_shards(tmp_path, n_images=12, shard_size=3)
    spec = f"shards:{tmp_path}/shards"
    first, again = names(stream(spec, seed=0, shuffle_buffer=4)), names(stream(spec, seed=0, shuffle_buffer=4))
    other = names(stream(spec, seed=1, shuffle_buffer=4))
    assert first == again
    assert first != other and sorted(first) == sorted(other) == sorted(keys)
    assert first != keys
    assert names(stream(spec, train=False, shuffle_buffer=4)) == keys  # validation: stored order, no shuffle


def test_every_dataset_family_streams_with_its_own_pairing(tmp_path: Path) -> None:
    """The item made from a streamed image is the map-style item of that image (validation: deterministic)."""
    src = photo_folder(tmp_path / "src", n=2)
    files = sorted(src.iterdir())
    families = [
        lambda s: HRImageDataset(s, keep, scale=4, crop_size=64, train=False, seed=3),
        lambda s: ColorizationDataset(s, crop_size=64, train=False, seed=3),
        lambda s: FilmDataset(s, crop_size=64, train=False, seed=3),
    ]
    for make in families:
        mapped, streamed = make(str(src)), make("shards:unused")
        for i, path in enumerate(files):
            want, got = mapped[i], streamed.streamed_item(read_image(path), path.name, i)
            assert torch.equal(want["lq"], got["lq"]) and torch.equal(want["gt"], got["gt"]), type(mapped).__name__
    with pytest.raises(TypeError, match="no length"):
        len(make("shards:unused"))
    with pytest.raises(ValueError, match="cannot be combined"):
        ColorizationDataset("shards:x", crop_size=64, optional_sources=[str(src)])


@pytest.mark.timeout(120)
def test_hf_streaming_of_a_local_imagefolder(tmp_path: Path) -> None:
    src = photo_folder(tmp_path / "src", n=3)
    want = {p.name: read_image(p) for p in src.iterdir()}

    def gts(rank: int, world: int) -> list[np.ndarray]:
        ds = HRImageDataset(f"hf-stream:{src}", keep, scale=1, train=False)
        return [item["gt"].permute(1, 2, 0).numpy() for item in StreamingDataset(ds, rank=rank, world_size=world)]

    def match(images: list[np.ndarray]) -> list[str]:
        return sorted(n for img in images for n, ref in want.items() if np.array_equal(ref, img))

    assert match(gts(0, 1)) == sorted(want)
    split = [gts(r, 2) for r in range(2)]
    assert all(split) and match(split[0] + split[1]) == sorted(want)
    # DataLoader workers: `datasets` gives each its shards (one here: the second worker retires, not spins)
    endless = StreamingDataset(HRImageDataset(f"hf-stream:{src}", keep, scale=1, crop_size=8), shuffle_buffer=2)
    loader = iter(DataLoader(endless, batch_size=None, num_workers=2))
    assert len({next(loader)["name"] for _ in range(2 * len(want))}) == len(want)
    # the writer takes the same source and packs the original bytes
    shards = write_shards(f"hf:{src}", tmp_path / "out", progress=False)
    packed = [decode_image(image_part(s, k, p)[1], k) for s in shards for k, p in iter_samples(s)]
    assert match(packed) == sorted(want)


def test_bad_shards_fail_with_one_line_naming_them(tmp_path: Path) -> None:
    shards, _ = tiny_shards(tmp_path, n_images=4, shard_size=2)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar file at all" * 100)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(shards[0].read_bytes()[:700])  # inside the first member's data
    bad_member = tmp_path / "bad.tar"
    with tarfile.open(bad_member, "w") as tar:
        info = tarfile.TarInfo("000000000_x.png")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"12345"))
    expected = {junk: "junk.tar: corrupt", cut: "cut.tar: corrupt", bad_member: "bad.tar: member 000000000_x.png: not an image"}
    for path, what in expected.items():
        with pytest.raises(ShardError, match=what) as err:
            names(stream(f"shards:{path}"))
        assert "\n" not in str(err.value)
    one, _ = tiny_shards(tmp_path / "one", n_images=1, shard_size=1)
    with pytest.raises(ValueError, match="reader 1 of 2 .* got no samples"):
        next(iter(stream(f"shards:{one[0]}", infinite=True, rank=1, world_size=2)))


def test_training_runs_from_shards_through_the_composed_config(tmp_path: Path) -> None:
    write_shards("skimage", tmp_path / "shards", shard_size=3, progress=False)
    spec = f"{tmp_path}/shards/shard-{{000000..000002}}.tar"
    cfg = compose_train(
        tiny_overrides(tmp_path / "run")
        + [f"data.train.source='shards:{spec}'", f"data.val.source=shards:{tmp_path}/shards"]
    )
    result = train(cfg)
    assert int(result.module.iteration) == 4
    assert (tmp_path / "run" / "export" / "generator.safetensors").exists()
    metrics = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    assert "val/psnr" in metrics and "train/g_adv" in metrics


def test_ranks_draw_independent_augmentations(monkeypatch) -> None:
    """Without DataLoader workers every DDP rank has the same torch seed; the datasets' generator mixes in the
    rank so rank 1 draws other crops than rank 0, while rank 0 keeps the single-process stream."""
    import torch

    from restoregan.data.datasets import ProcessRandom

    def first_draws(rank: int | None) -> list[float]:
        if rank is None:
            monkeypatch.delenv("RANK", raising=False)
        else:
            monkeypatch.setenv("RANK", str(rank))
        torch.manual_seed(123)
        return ProcessRandom().get().random(4).tolist()

    single, rank0, rank1 = first_draws(None), first_draws(0), first_draws(1)
    assert rank0 == single
    assert rank1 != rank0
