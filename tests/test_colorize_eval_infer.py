"""evaluate.py and infer.py for colorization models: report schema, luminance kept, sequences, bad input. The task's
own pieces (evaluation data, stage, stabiliser on real frames) are tested in process in test_colorize_task.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from restoregan.data.color import luminance
from restoregan.data.io import read_image, to_tensor, write_image
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.gans.colorize_unet import ColorizeUNet
from restoregan.inference.temporal import ChromaStabilizer, FlickerMeter, Motion
from cli_utils import compose_conf, infer_in_process, photo_folder


ARCH = {"_target_": "restoregan.gans.colorize_unet.ColorizeUNet", "encoder": "resnet18", "pretrained": False,
        "decoder_channels": [16, 16, 16, 8, 8], "attention": True}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny colorizer that does colour (random head), exported like train.py does."""
    torch.manual_seed(0)
    net = ColorizeUNet(**{k: v for k, v in ARCH.items() if k != "_target_"}).eval()
    torch.nn.init.normal_(net.head.weight, std=0.3)
    path = tmp_path_factory.mktemp("model") / "generator"
    task = {"_target_": "restoregan.tasks.colorize.ColorizationTask", "color_space": "yuv", "render_size": 64}
    return save_export(path, net, ARCH, {"task": task, "scale": 1})


def test_evaluate_reports_model_and_grey_baseline(model: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos")
    out = tmp_path / "eval"
    report = evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={photos}", f"out_dir={out}", "device=cpu"]))
    assert json.loads((out / "metrics.json").read_text()) == report
    assert (out / "metrics.md").read_text().count("|") > 10 and (out / "comparison.png").exists()
    assert set(report["methods"]) == {"grey", "generator"}
    grey, ours = report["methods"]["grey"], report["methods"]["generator"]
    for method in (grey, ours):
        assert {"psnr", "ssim", "delta_e", "colorfulness", "fid", "images"} <= set(method)
        assert len(method["images"]) == 2
    assert grey["colorfulness"] == 0 and ours["colorfulness"] > 0 and report["colorfulness_original"] > 10
    assert grey["delta_e"] > 1
    if grey["fid"] is None:  # offline: no Inception weights; never a made-up number
        assert report["fid_note"] and ours["fid"] is None


def test_evaluate_scores_only_the_held_out_photos(model: Path, tmp_path: Path) -> None:
    """task.holdout_every=N scores the photos a run trained with data.train.holdout_every=N never saw."""
    photos = photo_folder(tmp_path / "photos", 3)  # photo0..2: every 2nd held out = photo0, photo2
    report = evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={photos}", f"out_dir={tmp_path / 'e'}",
                                                "device=cpu", "task=colorize", "task.holdout_every=2"]))
    assert [im["image"] for im in report["methods"]["grey"]["images"]] == ["photo0.png", "photo2.png"]


def test_evaluate_skips_grey_references_and_rejects_a_grey_only_folder(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(folder / "flat.png")
    with pytest.raises(ValueError, match="only grey images"):
        evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={folder}", f"out_dir={tmp_path / 'e'}", "device=cpu"]))
    photo_folder(folder, 1)
    report = evaluate(compose_conf("evaluate", [f"ckpt={model}", f"hr_dir={folder}", f"out_dir={tmp_path / 'e'}", "device=cpu"]))
    assert report["skipped_grey_images"] == ["flat.png"] and len(report["methods"]["grey"]["images"]) == 1


def test_colour_input_is_accepted_and_its_luminance_kept(model: Path, tmp_path: Path) -> None:
    photo = photo_folder(tmp_path / "in", 1) / "photo0.png"  # already colour: only its luminance is used
    (out_path,) = infer_in_process([f"ckpt={model}", f"input={photo}", f"output={tmp_path / 'out'}"])
    assert out_path == tmp_path / "out" / "photo0_color.png"
    src, out = to_tensor(read_image(photo))[None], to_tensor(read_image(out_path))[None]
    assert (out - out.mean(1, keepdim=True)).abs().max() > 0.05
    assert (luminance(out) - luminance(src)).abs().max() * 255 <= 1.0


def test_non_image_is_rejected_in_one_line(model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    proc = subprocess.run(
        [sys.executable, "infer.py", f"ckpt={model}", f"input={bad}", f"output={tmp_path / 'o'}", "device=cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: not an image")


def _frames(folder: Path, n: int = 4) -> Path:
    """A grey scene panning right by 2 px per frame."""
    import skimage.data

    base = skimage.data.camera()[::4, ::4].astype(np.float32) / 255  # (128, 128)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        frame = np.roll(base, 2 * i, axis=1)[:96, :120]
        write_image(folder / f"{i + 1}.png", np.repeat(frame[:, :, None], 3, axis=2))
    return folder


def test_frame_folder_gets_frames_and_contact_sheet(model: Path, tmp_path: Path) -> None:
    """A folder of same-size frames is one sequence: the film pipeline's PNG frames (stabilised chroma, the
    input's luminance) and a contact sheet. Flicker itself: test_colorize_task.py and evaluate.py input=... result=...."""
    frames = _frames(tmp_path / "film")
    infer_in_process([f"ckpt={model}", f"input={frames}", f"output={tmp_path / 'out'}"])
    folder = tmp_path / "out" / "film_color"
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(4)] and (folder / "frames.json").exists()
    for src, out in zip(sorted(frames.iterdir(), key=lambda p: int(p.stem)), pngs):
        a, b = to_tensor(read_image(src))[None], to_tensor(read_image(out))[None]
        assert (luminance(b) - luminance(a)).abs().max() * 255 <= 1.0
        assert (b - b.mean(1, keepdim=True)).abs().max() > 0.01  # coloured
    assert Image.open(tmp_path / "out" / "film_color_contact.png").size[0] > 0


def test_video_file_is_coloured_to_a_video(model: Path, tmp_path: Path) -> None:
    import av

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            arr = np.full((48, 64, 3), 40 * i, np.uint8)
            arr[10:30, 5 + 4 * i : 25 + 4 * i] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    infer_in_process([f"ckpt={model}", f"input={video}", f"output={tmp_path / 'out'}", "video.max_frames=3"])
    result = tmp_path / "out" / "clip_color.mp4"
    assert result.exists() and (tmp_path / "out" / "clip_color_contact.png").exists()
    assert not list((tmp_path / "out").glob("*stability*"))  # flicker is evaluate.py input=... result=...'s now

    def times(path: Path) -> list[float]:
        with av.open(str(path)) as c:
            return [float(f.pts * f.time_base) for f in c.decode(video=0)]

    # every coloured frame keeps its input's presentation time
    assert times(result) == pytest.approx(times(video)[:3], abs=1e-6)


def test_stabiliser_lowers_flicker_but_not_across_a_cut() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    scene = 0.5 + 0.4 * np.sin(xx / 5) * np.cos(yy / 7)
    other = 0.5 + 0.4 * np.sin(yy / 3 + 1)  # a different shot
    lums = [scene] * 5 + [other] * 2
    chromas = [np.full((2, 64, 64), 0.2, np.float32) + rng.normal(0, 0.05, (2, 1, 1)).astype(np.float32) for _ in lums]
    chromas[5:] = [np.full((2, 64, 64), -0.3, np.float32)] * 2
    stab, before, after, cuts = ChromaStabilizer(0.7), FlickerMeter(), FlickerMeter(), []
    prev = None
    for i, (lum, c) in enumerate(zip(lums, chromas)):
        motion = Motion(prev, lum, 0.1) if prev is not None else None
        cuts += [i] if motion is not None and motion.cut else []
        s = stab(c, motion)
        before.add(c, motion)
        after.add(s, motion)
        prev = lum
        if i == 5:
            np.testing.assert_array_equal(s, c)  # a new shot keeps its own colour
    assert cuts == [5]
    assert after.summary()["raw"] < 0.6 * before.summary()["raw"]
    assert before.summary()["pairs"] == 5  # 6 pairs minus the cut
