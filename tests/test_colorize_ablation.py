"""bench/colorize_ablation.py's labels for its auxiliary head (issue 16): the WordNet branch comes from an ImageNet
file name, a photo without one gets no label, and the ImageNet hold-out is the every-5th photo that training leaves
out. No training runs here."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import colorize_ablation as ablation  # noqa: E402


def test_coarse_label_is_the_wordnet_branch_of_the_file_name() -> None:
    label = ablation.coarse_label
    assert label(Path("n01443537_goldfish.jpg")) == label(Path("n01530575_brambling.jpg"))  # both n01: animals
    assert label(Path("n02085620_Chihuahua.jpg")) != label(Path("n01443537_goldfish.jpg"))
    assert label(Path("n03000134_chainlink_fence.jpg")) == label(Path("n04004767_printer.jpg"))  # made objects
    assert label(Path("n07714571_head_cabbage.jpg")) != label(Path("n04004767_printer.jpg"))  # food
    assert label(Path("n06359193_web_site.jpg")) == ablation.OTHER_GROUP  # a branch without a group of its own
    for name in ("baboon.png", "nothing_n01443537.jpg", "n0144_short.jpg"):  # no WordNet id: no label
        assert label(Path(name)) == -1


def test_imagenet_hold_out_is_what_training_leaves_out(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    folder = tmp_path / "imagenet_sample"
    folder.mkdir()
    names = [f"n0{i:07d}_thing.jpg" for i in range(1, 11)]
    for name in names:
        Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / name)
    monkeypatch.setattr(ablation, "IMAGENET", folder)
    monkeypatch.setattr(ablation, "BENCH", tmp_path / "absent")  # the benchmark sets are skipped, not an error
    sets = ablation.held_out_sets()
    assert set(sets) == {"skimage_val", "ImageNet_held_out"}
    held = {p.name for p in sets["ImageNet_held_out"]}
    assert held == {names[0], names[5]}  # every 5th by name, the first included
    trained = {p.name for p in ablation.holdout_split(ablation.list_images(folder), 5, held_out=False)}
    assert not held & trained and len(held | trained) == 10
