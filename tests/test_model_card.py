"""Model cards (restoregan.gans.card): written by a training run's export, carried into ONNX and re-exports by
export.py (with evaluate.py's figures matched by sha256), printed by infer.py, refused when not plain data."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from pathlib import Path

import onnx
import pytest
import yaml

from cli_utils import compose_conf, infer_in_process, photo_folder
from pipeline_utils import make_export
from restoregan.evaluation.run import evaluate
from restoregan.exporting import export
from restoregan.gans.card import format_card, training_data
from restoregan.gans.checkpoint import CheckpointError
from restoregan.models import load_model
from restoregan.training.run import train
from train_utils import compose_train, tiny_overrides


def test_training_run_writes_a_card_that_infer_prints(tmp_path: Path, capsys) -> None:
    cfg = compose_train(tiny_overrides(tmp_path / "run") + ["pretrain_iters=1", "gan_iters=1", "generator.num_block=1",
                                                           "card.author=Ada", "card.licence=CC-BY-4.0"])
    result = train(cfg)
    card = yaml.safe_load(Path(f"{result.export}.yaml").read_text())["card"]
    assert card["name"] == cfg.name and (card["author"], card["licence"]) == ("Ada", "CC-BY-4.0")
    assert (card["task"], card["scale"], card["iterations"]) == ("sr", cfg.task.scale, 2)
    assert card["architecture"].startswith(cfg.generator._target_.rsplit(".", 1)[-1] + "(")
    assert "skimage" in card["training_data"] and str(tmp_path) not in card["training_data"]
    assert card["date"] == datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    # the weights alone carry it too (their metadata), e.g. when the yaml was not copied along
    alone = tmp_path / "alone" / "model.safetensors"
    alone.parent.mkdir()
    shutil.copy(f"{result.export}.safetensors", alone)
    assert load_model(alone).meta["card"] == card
    capsys.readouterr()
    infer_in_process([f"ckpt={result.export}.yaml", f"input={photo_folder(tmp_path / 'photos', 1)}",
                      f"output={tmp_path / 'out'}"])
    printed = capsys.readouterr().out
    assert f"model card: {cfg.name}, author: Ada, licence: CC-BY-4.0" in printed
    assert "iterations: 2" in printed
    # a train.py checkpoint converts too; its card is made from what the checkpoint says
    export(compose_conf("export", [f"ckpt={result.last_checkpoint}", f"output={tmp_path / 'run.onnx'}"]))
    from_ckpt = load_model(tmp_path / "run.onnx").meta["card"]
    assert (from_ckpt["name"], from_ckpt["task"], from_ckpt["architecture"]) == ("run", "sr", card["architecture"])


def test_an_export_without_a_card_loads_and_prints_none(tmp_path: Path, capsys) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    assert "card" not in yaml.safe_load(src.read_text())
    assert "card" not in load_model(src).meta
    infer_in_process([f"ckpt={src}", f"input={photo_folder(tmp_path / 'photos', 1)}", f"output={tmp_path / 'out'}"])
    assert "model card" not in capsys.readouterr().out


@pytest.mark.parametrize(("card", "match"), [
    ({"name": {"nested": 1}}, "card.name: a dict is not allowed"),
    ({"owner": "x"}, "card.owner: not a card key"),
    ({"benchmarks": [{"dataset": "Set5", "psnr": [1, 2]}]}, r"card.benchmarks\[0\].psnr: a list"),
    ("text", "card: a str, not a mapping"),
    ({"name": "ok\x1b[2J\x1b]0;pwned\x07"}, "card.name: holds the control character U\\+001B"),
    ({"author": "Ada\nmodel card: forged"}, "card.author: holds the control character U\\+000A"),
    ({"description": "one\r\ntwo"}, "card.description: holds the control character U\\+000D"),
    ({"licence": "MIT\u202e"}, "card.licence: holds the control character U\\+202E"),  # a bidi override
    ({"benchmarks": [{"dataset": "Set5\x1b[31m"}]}, r"card.benchmarks\[0\].dataset: holds the control"),
    ({"benchmarks": [{"psnr\x1b[0m": 1.0}]}, r"card.benchmarks\[0\]: key 'psnr\\x1b\[0m': holds the control"),
])
def test_a_card_that_is_not_plain_data_is_refused(tmp_path: Path, card: object, match: str) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    description = yaml.safe_load(src.read_text())
    src.write_text(yaml.safe_dump({**description, "card": card}))
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(src)
    assert str(info.value).startswith(str(src)) and "\n" not in str(info.value)


def test_a_description_keeps_its_paragraphs_indented(tmp_path: Path) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    description = yaml.safe_load(src.read_text())
    src.write_text(yaml.safe_dump({**description, "card": {"name": "m", "description": "First  one.\n\nSecond."}}))
    printed = format_card(load_model(src).meta["card"])
    assert printed.splitlines() == ["model card: m", "  First one.", "  Second."]


def test_scores_are_taken_from_the_report_that_scored_this_very_file(tmp_path: Path) -> None:
    src = make_export(tmp_path / "runs", "tiny_sr", "sr")
    photos = photo_folder(tmp_path / "Set2", 2)
    evaluate(compose_conf("evaluate", [f"ckpt={src}", f"hr_dir={photos}", f"out_dir={tmp_path / 'report'}",
                                       "lpips=false", "device=cpu", "grid_images=1"]))
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    scored = next(m for m in report["methods"].values() if "checkpoint" in m)
    weights = src.with_suffix(".safetensors")
    assert scored["checkpoint"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()

    export(compose_conf("export", [f"ckpt={src}", f"output={tmp_path / 'sr.onnx'}",
                                   f"scores={tmp_path / 'report' / 'metrics.json'}", "card.description=tiny test"]))
    card = load_model(tmp_path / "sr.onnx").meta["card"]
    row = card["benchmarks"][0]
    assert (row["dataset"], row["task"]) == ("Set2", "sr")
    assert row["psnr"] == scored["psnr"] and row["ssim"] == scored["ssim"]
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "sr.onnx")).metadata_props}
    assert json.loads(meta["restoregan.card"])["description"] == "tiny test"
    assert f"benchmark Set2: task sr, psnr {scored['psnr']:.4g}" in format_card(card)

    other = make_export(tmp_path / "runs", "other_sr", "sr", seed=1)  # same network, other weights
    with pytest.raises(ValueError, match="scored no model with this file's sha256"):
        export(compose_conf("export", [f"ckpt={other}", f"output={tmp_path / 'other.onnx'}",
                                       f"scores={tmp_path / 'report' / 'metrics.json'}"]))
    assert not (tmp_path / "other.onnx").exists()


def test_training_data_names_folders_not_paths() -> None:
    data = {"train": {"_target_": "restoregan.data.datasets.HRImageDataset", "source": "/home/me/data/DIV2K_train_HR",
                      "degradation": {"_target_": "restoregan.data.pipelines.BicubicDegradation"}}}
    assert training_data(data) == "HRImageDataset: DIV2K_train_HR (BicubicDegradation)"
    assert training_data({"train": {"_target_": "x.VideoWindowDataset", "sources": ["/a/clip1.mp4", "hf:org/set"]}}) \
        == "VideoWindowDataset: clip1.mp4, hf:org/set"
