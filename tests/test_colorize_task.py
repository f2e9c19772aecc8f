"""The colorization task module: what a model file rebuilds, options, metrics' reference, evaluation data,
application to a batch and to a frame stream (the pipeline stage), in process on tiny data."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from restoregan.data.color import CHROMA_SCALE, chroma, luminance
from restoregan.data.io import list_images, read_image, to_tensor, write_image
from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.gans.colorize_unet import ColorizeUNet
from restoregan.inference.temporal import FlickerMeter, Motion
from restoregan.models import load_model
from restoregan.tasks import legacy_task
from restoregan.tasks.base import Item, RunOptions
from restoregan.tasks.colorize import ColorizationTask, ColorizeStage
from cli_utils import compose_conf, photo_folder

ARCH = {"_target_": "restoregan.gans.colorize_unet.ColorizeUNet", "encoder": "resnet18", "pretrained": False,
        "decoder_channels": [16, 16, 16, 8, 8], "attention": True}
TARGET = "restoregan.tasks.colorize.ColorizationTask"


def _export(path: Path, **task: object) -> Path:
    torch.manual_seed(0)
    net = ColorizeUNet(**{k: v for k, v in ARCH.items() if k != "_target_"}).eval()
    torch.nn.init.normal_(net.head.weight, std=0.3)  # random chroma: the model does colour
    return save_export(path, net, ARCH, {"task": {"_target_": TARGET, **task}, "scale": 1})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("model") / "generator", color_space="yuv", render_size=64)


# --- what a model file says -------------------------------------------------------------------------------
def test_model_file_rebuilds_the_task_and_options_lie_over_it(model_file: Path) -> None:
    model = load_model(model_file)
    assert isinstance(model.task, ColorizationTask) and model.scale == 1
    assert model.task.config() == {"_target_": TARGET, "color_space": "yuv", "render_size": 64}
    over = load_model(model_file, options={"render_size": 128, "stabilize": False, "warmup": None})
    assert over.task.render_size == 128 and over.task.stabilize is False and over.task.warmup == 8


def test_task_yaml_laid_over_a_lab_model_keeps_its_colour_space(tmp_path: Path) -> None:
    """evaluate.py / infer.py `task=colorize task.<option>=...` lay the whole yaml over the file's task."""
    options = dict(compose_conf("evaluate", ["task=colorize", "task.fid=false"]).task)
    options.pop("_target_")
    model = load_model(_export(tmp_path / "lab", color_space="lab", render_size=64), options=options)
    assert model.task.space == "lab" and model.task.render_size == 64 and model.task.fid is False


def test_format_1_colorize_files_keep_their_colour_space_and_render_size() -> None:
    config = legacy_task("colorize", {"color_space": "lab", "render_size": 96, "scale": 1})
    assert config == {"_target_": TARGET, "color_space": "lab", "render_size": 96}
    assert ColorizationTask.from_legacy("sr", {"scale": 4}) is None


def test_a_network_that_cannot_colour_is_refused_naming_the_file(tmp_path: Path) -> None:
    from restoregan.gans.restore_unet import RestoreUNet

    arch = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 1, "num_conv": 1}
    net = RestoreUNet(num_feat=8, num_levels=1, num_conv=1)
    path = save_export(tmp_path / "rgb_as_colour", net, arch, {"task": {"_target_": TARGET}, "scale": 1})
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path.with_suffix(".yaml"))) and "no colorizer" in message and "\n" not in message


@pytest.mark.parametrize(("key", "value", "words"), [
    ("color_space", "rgb", "colour space"), ("render_size", 0, "render_size"), ("render_size", True, "render_size")])
def test_bad_stored_settings_are_refused_naming_the_file(tmp_path: Path, key: str, value: object, words: str) -> None:
    path = _export(tmp_path / "bad", **{key: value})
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(info.value).startswith(str(path.with_suffix(".yaml"))) and words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"sequence": "maybe"}, {"stabilize_strength": 1.0}, {"warmup": -1},
                                    {"holdout_every": 1}, {"render_size": 12.5}])
def test_bad_options_are_one_line_value_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError) as info:
        ColorizationTask(**kwargs)
    key = next(iter(kwargs))
    assert key in str(info.value) and "\n" not in str(info.value)


# --- metrics ----------------------------------------------------------------------------------------------
def test_metrics_score_against_the_original_where_the_batch_has_one() -> None:
    """Training scores against the original's chroma on the (damaged) input's luminance; evaluate.py puts the
    photo itself in the batch as `original` and is scored against it."""
    task = ColorizationTask()
    gt = torch.rand(1, 3, 32, 32)
    faded = (0.5 + 0.5 * luminance(gt)).expand(-1, 3, -1, -1)  # the luminance differs from the original's
    batch = {"lq": faded, "gt": gt}
    target = task.target(batch)
    assert task.metrics(target, batch)["delta_e"][0] < 1e-6  # the target is what training asks for
    against_photo = task.metrics(target, {**batch, "original": gt})
    assert against_photo["delta_e"][0] > 1.0 and np.isfinite(against_photo["psnr"][0])


# --- evaluation data --------------------------------------------------------------------------------------
def test_eval_data_greys_colour_photos_and_lists_grey_ones(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", 2)
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(photos / "flat.png")
    data = ColorizationTask().eval_data(compose_conf("evaluate", [f"hr_dir={photos}"]))
    items = list(data.items)
    assert [it["name"] for it in items] == ["photo0.png", "photo1.png"]
    assert data.header["skipped_grey_images"] == ["flat.png"]
    for it in items:
        original = to_tensor(read_image(photos / it["name"]))[None]
        assert torch.equal(it["original"], original) and torch.equal(it["gt"], original)
        lq = it["lq"]
        assert torch.equal(lq[:, 0], lq[:, 1]) and torch.equal(lq[:, 0], lq[:, 2])  # R = G = B
        assert torch.equal(lq, torch.round(lq * 255) / 255)  # 8-bit levels, as a scanned print
        assert (luminance(lq) - luminance(original)).abs().max() * 255 <= 0.5 + 1e-4
    assert data.header["colorfulness_original"] > 10
    assert data.sources == [photos]
    assert any("Colourfulness of the originals" in line for line in data.notes(data.header))
    assert data.title(data.header, 2) == "photos: colorization (2 photos)"


def test_eval_data_holdout_and_grey_only_folder(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", 3)  # every 2nd held out: photo0, photo2
    data = ColorizationTask(holdout_every=2).eval_data(compose_conf("evaluate", [f"hr_dir={photos}"]))
    assert [it["name"] for it in data.items] == ["photo0.png", "photo2.png"]
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(grey / "flat.png")
    data = ColorizationTask().eval_data(compose_conf("evaluate", [f"hr_dir={grey}"]))
    with pytest.raises(ValueError, match=f"{grey}: only grey images"):
        list(data.items)
    with pytest.raises(ValueError, match="missing: folder of colour photos not found"):
        ColorizationTask().eval_data(compose_conf("evaluate", [f"hr_dir={tmp_path / 'missing'}"]))


# --- application ------------------------------------------------------------------------------------------
def test_apply_batch_keeps_luminance_and_renders_at_the_models_size(model_file: Path) -> None:
    model = load_model(model_file)
    calls = []
    model.net.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape[-2:])))
    photo = to_tensor(read_image(photo_folder(Path(model_file).parent / "in", 1) / "photo0.png"))[None]
    out = ColorizationTask().apply_batch(model, photo, RunOptions())  # a colour input: its luminance is used
    assert out.shape == photo.shape and calls == [(64, 64)]  # the file's render size, not the task's None
    assert torch.equal(out, torch.round(out * 255) / 255)
    assert (out - out.mean(1, keepdim=True)).abs().max() > 0.05, "the output should hold colour"
    assert (luminance(out) - luminance(photo)).abs().max() * 255 <= 1.0


def _panning(n: int = 4) -> list[np.ndarray]:
    """A grey scene panning right by 2 px per frame."""
    import skimage.data

    base = skimage.data.camera()[::4, ::4].astype(np.float32) / 255  # (128, 128)
    return [np.repeat(np.roll(base, 2 * i, axis=1)[:96, :120, None], 3, axis=2) for i in range(n)]


def _run_stage(model, frames: list[np.ndarray], **options: object) -> list[np.ndarray]:
    task = model.task if not options else load_model(model.path, options=options).task
    stage = task.stage("colorize", model, RunOptions(batch=3))
    items = (Item(i, 10 * i, Fraction(1, 100), f) for i, f in enumerate(frames))
    out = list(stage(items))
    assert [(it.index, it.pts) for it in out] == [(i, 10 * i) for i in range(len(frames))]
    return [it.image for it in out]


def _flicker(frames: list[np.ndarray], space: str = "yuv") -> tuple[dict, list[int]]:
    """The flicker of the frames' chroma in 8-bit levels, and the scene cuts found."""
    meter, prev, cuts = FlickerMeter(), None, []
    for i, img in enumerate(frames):
        t = to_tensor(img)[None]
        lum = luminance(t, space)[0, 0].numpy()
        motion = Motion(prev, lum, 0.1) if prev is not None else None
        cuts += [i] if motion is not None and motion.cut else []
        meter.add(chroma(t, space)[0].numpy() * 255 * CHROMA_SCALE[space], motion)
        prev = lum
    return meter.summary(), cuts


def test_stage_stabilises_chroma_and_keeps_luminance(model_file: Path) -> None:
    model = load_model(model_file)
    stage = model.task.stage("colorize", model, RunOptions())
    assert isinstance(stage, ColorizeStage) and stage.context == (8, 0) and stage.rate(Fraction(24)) == 24
    assert load_model(model_file, options={"stabilize": False}).task.stage("c", model, RunOptions()).context == (0, 0)
    frames = _panning()
    raw, stable = _run_stage(model, frames, stabilize=False), _run_stage(model, frames)
    before, cuts = _flicker(raw)
    after, _ = _flicker(stable)
    assert before["pairs"] == after["pairs"] == 3 and cuts == []
    assert after["compensated"] < before["compensated"]
    np.testing.assert_array_equal(raw[0], stable[0])  # the first frame has nothing to be blended with
    for src, out in zip(frames, stable):
        assert np.abs(luminance(to_tensor(out)[None]) - luminance(to_tensor(src)[None])).max() * 255 <= 1.0


def test_real_film_frames_keep_their_luminance(model_file: Path) -> None:
    frames = [read_image(p) for p in list_images(shared_path("footage", "old_film_frames_001"))[:3]]
    out = _run_stage(load_model(model_file), frames)
    for src, img in zip(frames, out):
        assert np.abs(luminance(to_tensor(img)[None]) - luminance(to_tensor(src)[None])).max() * 255 <= 1.0
        assert (img - img.mean(2, keepdims=True)).__abs__().max() > 0.01  # coloured


def test_sequence_decides_for_a_folder(tmp_path: Path) -> None:
    for i, side in enumerate((32, 32, 40)):
        write_image(tmp_path / f"{i}.png", np.zeros((side, side, 3), np.float32))
    same, mixed = list_images(tmp_path)[:2], list_images(tmp_path)
    auto = ColorizationTask()
    assert auto.sequence(same) and not auto.sequence(mixed) and not auto.sequence(same[:1])
    assert ColorizationTask(sequence=True).sequence(mixed) and not ColorizationTask(sequence=False).sequence(same)
