"""Bad inputs that are not hostile, only wrong: each either works or ends in one line naming the file and the
problem, with the input unchanged and no output written. (Hostile model files: test_hostile_files.py; bad
images: test_bad_images.py; outputs over inputs: test_outputs_safe.py.)

Classes covered: an export that lies about itself (scale, task, task settings, weights of the wrong kind,
NaN/inf weights), descriptions too large to parse quickly, a folder given as the model, float images with
missing (NaN) pixels, a one-frame video through colorize, and a file name that is not valid UTF-8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

from cli_utils import ROOT, infer_in_process
from pipeline_utils import moving_clip, streams, write_clip
from restoregan import cli
from restoregan.data.io import ImageReadError, read_image
from restoregan.gans.checkpoint import MAX_DESCRIPTION_BYTES, load_generator
from restoregan.pipeline.checkpoints import newest_export


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def crafted_export(runs: Path, task: str, where: Path, description: Callable[[dict], Any] | None = None,
                   state: Callable[[dict], dict] | None = None) -> Path:
    """A copy of the tiny `task` export of `runs` at where/m.{safetensors,yaml}, its description and weights
    changed by the callables (the same description in the yaml and in the metadata)."""
    src = runs / f"tiny_{task}" / "export" / "generator"
    desc = yaml.safe_load(src.with_suffix(".yaml").read_text())
    desc = description(desc) or desc if description else desc
    weights = load_file(f"{src}.safetensors")
    weights = state(weights) if state else weights
    where.mkdir(parents=True, exist_ok=True)
    save_file(weights, where / "m.safetensors", metadata={"format": "pt", "restoregan": json.dumps(desc)})
    (where / "m.yaml").write_text(yaml.safe_dump(desc))
    return where / "m.safetensors"


def refused(overrides: list[str], named: Path, watched: list[Path], *words: str) -> str:
    """infer.py fails in one user-facing line naming `named` (and `words`); nothing under `watched` changed."""
    before = {p: p.read_bytes() for w in watched for p in w.rglob("*") if p.is_file()}
    with pytest.raises(Exception) as info:
        infer_in_process(overrides)
    message = cli.one_line(info.value)
    assert str(named) in message and cli.TRACEBACK_ENV not in message, message
    for word in words:
        assert word in message, message
    after = {p: p.read_bytes() for w in watched for p in w.rglob("*") if p.is_file()}
    assert after == before, sorted(set(after) ^ set(before))
    return message


def _set(**values: Any) -> Callable[[dict], None]:
    def change(desc: dict) -> None:
        for key, value in values.items():
            target, _, sub = key.partition(".")
            if sub:
                desc[target][sub] = value
            else:
                desc[key] = value
    return change


def _weights(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], dict]:
    return lambda state: {k: fn(v) if v.is_floating_point() else v for k, v in state.items()}


def _task(target: str, **kwargs: Any) -> dict:
    return {"_target_": f"restoregan.tasks.{target}", **kwargs}


# (task of the tiny export, its change, words the refusal must hold)
LIES = {
    "nan-weights": ("sr", None, _weights(lambda v: torch.full_like(v, float("nan"))), ["NaN"]),
    "inf-weights": ("restore", None, _weights(lambda v: torch.full_like(v, float("inf"))), ["infinite"]),
    "int8-weights": ("sr", None, _weights(lambda v: v.to(torch.int8)), ["torch.int8"]),
    "bool-weights": ("sr", None, _weights(lambda v: v > 0), ["torch.bool"]),
    "scale-4-on-x2-net": ("sr", _set(scale=4), None, ["scale: 4", "x2"]),
    "scale-1-on-x2-net": ("sr", _set(scale=1, task=_task("restore.RestorationTask")), None, ["scale: 1", "x2"]),
    "sr-net-as-colorize": ("sr", _set(task=_task("colorize.ColorizationTask")), None, ["task is x1", "scales x2"]),
    "restore-net-as-colorize": ("restore", _set(task=_task("colorize.ColorizationTask")), None,
                                ["RRDBNet", "colorize"]),
    "restore-net-as-colorize-format-1": ("restore", _set(task="colorize", format_version=1), None,
                                         ["RRDBNet", "colorize"]),
    "restore-net-as-interp": ("restore", _set(task=_task("interp.InterpolationTask")), None, ["RRDBNet", "interp"]),
    "interp-net-as-sr": ("interp", _set(task=_task("sr.SuperResolutionTask", scale=1), scale=1), None,
                         ["InterpolationNet", "(frame0, frame1, t)"]),
    "colorize-net-as-restore": ("colorize", _set(task=_task("restore.RestorationTask")), None,
                                ["num_out_ch: 2", "restore"]),
    "colour-space": ("colorize", _set(**{"task.color_space": "banana"}), None, ["colour space", "banana"]),
    "render-size-text": ("colorize", _set(**{"task.render_size": "abc"}), None, ["render_size"]),
    "render-size-0": ("colorize", _set(**{"task.render_size": 0}), None, ["render_size"]),
    "grey-text": ("restore", _set(**{"task.grey": "yes"}), None, ["grey"]),
}


@pytest.mark.parametrize("case", sorted(LIES))
def test_export_that_lies_about_itself_is_refused_naming_it(case: str, runs: Path, image_dir: Path,
                                                            tmp_path: Path) -> None:
    task, description, state, words = LIES[case]
    model = crafted_export(runs, task, tmp_path / "model", description, state)
    if task == "interp" or case.endswith("-as-interp"):
        clip = write_clip(tmp_path / "clip.mp4", moving_clip(3))
        source = clip
    else:
        source = image_dir
    # a description that contradicts its network is refused naming the yaml, the half of the model that says it;
    # weights that are no weights name the weights file
    named = model.with_suffix(".yaml") if description is not None else model
    refused([f"ckpt={model}", f"input={source}", f"output={tmp_path / 'out'}"], named,
            [image_dir, tmp_path], *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_float_weights_of_another_precision_still_load(dtype: torch.dtype, runs: Path, tmp_path: Path) -> None:
    model = crafted_export(runs, "sr", tmp_path, state=_weights(lambda v: v.to(dtype)))
    reference = load_generator(runs / "tiny_sr" / "export" / "generator.safetensors").net
    loaded = load_generator(model).net
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=0.05)


def test_oversized_description_is_refused_fast_and_skipped_by_the_pipeline(runs: Path, tmp_path: Path) -> None:
    """A multi-megabyte yaml would take minutes for PyYAML; a deeply nested one overflows the recursion limit."""
    model = crafted_export(runs, "sr", tmp_path / "big" / "x" / "export")
    big = model.with_suffix(".yaml")
    big.write_text(big.read_text() + "notes: [" + ",".join(["1"] * (MAX_DESCRIPTION_BYTES // 2 + 10)) + "]\n")
    start = time.monotonic()
    with pytest.raises(ValueError, match="bytes; a description holds at most") as info:
        load_generator(big)
    assert str(big) in str(info.value) and time.monotonic() - start < 2
    deep = crafted_export(runs, "sr", tmp_path / "big" / "y" / "export").with_suffix(".yaml")
    deep.write_text("generator: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ValueError, match="not an export description"):
        load_generator(deep)
    assert newest_export(tmp_path / "big", "sr") is None  # neither is an export; no RecursionError


def test_folder_given_as_the_model_says_so(tmp_path: Path, image_dir: Path) -> None:
    folder = tmp_path / "m.safetensors"
    folder.mkdir()
    refused([f"ckpt={folder}", f"input={image_dir}", f"output={tmp_path / 'out'}"], folder, [image_dir],
            "a folder, not a model file")


def test_float_image_with_nan_pixels_is_refused(tmp_path: Path) -> None:
    import cv2

    img = np.full((8, 8, 3), 0.5, np.float32)
    img[2, 3] = np.nan
    cv2.imwrite(str(tmp_path / "scan.tif"), img)
    with pytest.raises(ImageReadError, match="1 pixels are NaN") as info:
        read_image(tmp_path / "scan.tif")
    assert str(tmp_path / "scan.tif") in str(info.value)
    img[2, 3] = 0.25
    cv2.imwrite(str(tmp_path / "scan.tif"), img)
    assert read_image(tmp_path / "scan.tif")[2, 3, 0] == pytest.approx(0.25)


def test_one_frame_video_colorizes(runs: Path, tmp_path: Path) -> None:
    """One frame has no previous one for the stabiliser to follow: coloured all the same, not a crash."""
    clip = write_clip(tmp_path / "one.mp4", moving_clip(1))
    model = runs / "tiny_colorize" / "export" / "generator.safetensors"
    assert infer_in_process([f"ckpt={model}", f"input={clip}", f"output={tmp_path / 'out'}"]) == [
        tmp_path / "out" / "one_color.mp4"]
    got = streams(tmp_path / "out" / "one_color.mp4")
    assert got["frames"] == 1 and got["size"] == (48, 64)
    assert (tmp_path / "out" / "one_color_contact.png").stat().st_size > 0


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_file_name_that_is_not_utf8_is_written_and_reported(runs: Path, tmp_path: Path) -> None:
    """The real script: printing `wrote <path>` must not fail on the name after the output is written."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(bytes(folder), b"scan\xff.png"))
    model = runs / "tiny_sr" / "export" / "generator.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([sys.executable, str(ROOT / "infer.py"), f"ckpt={model}", f"input={folder}",
                           f"output={tmp_path / 'out'}", "device=cpu"], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
    assert b"wrote " in proc.stdout
    assert os.listdir(bytes(tmp_path / "out")) == [b"scan\xff_x2.png"]


@pytest.mark.parametrize("option", ["tile=0", "tile=-1", "tile_overlap=-1", "half=maybe",
                                    "video.max_frames=-1", "video.contact_frames=-1", "video.contact_side=0",
                                    "video.batch=0", "video.input_fps=0", "pipeline=film video.max_frames=0",
                                    "pipeline=film video.crf=-3"])
def test_settings_are_refused_up_front_naming_the_key(option: str, runs: Path, image_dir: Path,
                                                       tmp_path: Path) -> None:
    """Values outside what a key takes, which used to pass silently (half=maybe read as true, max_frames=0 an
    empty video) or fail deep inside (contact_frames=0, device=banana)."""
    model = runs / "tiny_sr" / "export" / "generator.safetensors"
    *extra, setting = option.split()
    with pytest.raises(ValueError) as info:
        infer_in_process([f"ckpt={model}", f"input={image_dir}", f"output={tmp_path / 'out'}", *extra, setting])
    assert cli.one_line(info.value).startswith(f"{setting}: "), cli.one_line(info.value)
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


@pytest.mark.parametrize(("option", "words"), [
    ("task.render_size=0", ["render_size=0", "positive whole number"]),
    ("task.sequence=maybe", ["sequence='maybe'", "auto, true or false"]),
    ("task.stabilize_strength=2", ["strength"]),
])
def test_task_options_are_refused_by_the_task_naming_model_and_key(option: str, words: list[str], runs: Path,
                                                                   image_dir: Path, tmp_path: Path) -> None:
    """A task's own options are checked where the task is built from the model file, before any image."""
    model = runs / "tiny_colorize" / "export" / "generator.safetensors"
    refused([f"ckpt={model}", f"input={image_dir}", f"output={tmp_path / 'out'}", "task=colorize", option], model,
            [image_dir], *words)
    assert not (tmp_path / "out").exists()


def test_task_of_another_model_is_refused(runs: Path, image_dir: Path, tmp_path: Path) -> None:
    """task= sets options of the model's own task; another task's (whose options would not fit) is refused."""
    model = runs / "tiny_sr" / "export" / "generator.safetensors"
    message = refused([f"ckpt={model}", f"input={image_dir}", f"output={tmp_path / 'out'}", "task=colorize"], model,
                      [image_dir], "SuperResolutionTask", "ColorizationTask")
    assert message.startswith(f"{model}: ")
    assert not (tmp_path / "out").exists()


def test_pipeline_refused_before_its_first_segment_leaves_no_work_folder(runs: Path, tmp_path: Path) -> None:
    from pipeline_utils import run_infer

    clip = write_clip(tmp_path / "one.mp4", moving_clip(1))
    with pytest.raises(ValueError, match="holds only 1 frame") as info:
        run_infer([f"input={clip}", f"output={tmp_path / 'out.mp4'}", f"pipeline.runs_dir={runs}",
                   "pipeline.order=[restore,interpolate]"])
    assert str(clip) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mp4"]  # no out.mp4, no out.mp4.work/


@pytest.mark.parametrize("name", ["banana", "cuda:x", "mps"])
def test_unknown_or_absent_device_is_one_line(name: str) -> None:
    from restoregan.inference.tiled import resolve_device

    if name == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=f"^device={name}: "):
        resolve_device(name)


@pytest.mark.parametrize(("task", "name"), [("sr", "a_x2.png"), ("restore", "a_restored.png")])
def test_folder_where_an_output_file_goes_is_refused_before_the_work(task: str, name: str, runs: Path,
                                                                     image_dir: Path, tmp_path: Path) -> None:
    """It used to fail at the final rename, naming the temp file."""
    (tmp_path / "out" / name).mkdir(parents=True)
    model = runs / f"tiny_{task}" / "export" / "generator.safetensors"
    message = refused([f"ckpt={model}", f"input={image_dir / 'a.png'}", f"output={tmp_path / 'out'}"],
                      tmp_path / "out" / name, [image_dir], "is a folder")
    assert ".tmp" not in message
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


@pytest.mark.parametrize("option", ["grid_images=0", "temporal.max_frames=1"])
def test_evaluate_settings_are_refused_up_front_naming_the_key(option: str, image_dir: Path, tmp_path: Path) -> None:
    from cli_utils import compose_conf
    from restoregan.evaluation.run import evaluate

    cfg = compose_conf("evaluate", [f"hr_dir={image_dir}", f"out_dir={tmp_path / 'out'}", "lpips=false", option])
    with pytest.raises(ValueError, match=f"^{option}: expected"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("options", "key"), [(["task=interp", "task.max_triplets=0"], "max_triplets=0"),
                                              (["task=sr", "task.scale=0"], "scale=0")])
def test_evaluate_task_options_are_refused_up_front_naming_the_key(options: list[str], key: str, image_dir: Path,
                                                                   tmp_path: Path) -> None:
    from cli_utils import compose_conf
    from restoregan.evaluation.run import evaluate

    cfg = compose_conf("evaluate", [f"hr_dir={image_dir}", f"input={image_dir}", f"out_dir={tmp_path / 'out'}",
                                    "lpips=false", *options])
    with pytest.raises(ValueError) as info:
        evaluate(cfg)
    assert key in cli.one_line(info.value)
    assert not (tmp_path / "out").exists()
