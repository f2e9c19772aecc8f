"""The temporal restorer as a film stage (restoregan.inference.clip_stage.ClipStage) and through infer.py: frames
restored in chunks with neighbours each side, split at scene cuts, a segment a function of its own window; a
one-frame video, a clip shorter than the window and a cut inside a window handled; the restore stage picks
ClipStage or frame by frame from the model file. References are computed here, straight from the network, by
the documented rule (a second implementation, not the stage's streaming one)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from cli_utils import infer_in_process
from pipeline_utils import compose_infer, make_export, run_infer, write_clip
from restoregan.data.io import write_image
from restoregan.data.video import SceneCutDetector
from restoregan.gans.checkpoint import save_export
from restoregan.gans.temporal_restorer import TemporalRestorer
from restoregan.inference.clip_stage import ClipStage
from restoregan.models import load_model
from restoregan.pipeline.run import build_stages
from restoregan.pipeline.segments import WorkDir
from restoregan.tasks.base import FrameByFrame, Item, RunOptions
from restoregan.tasks.restore_video import VideoRestorationTask

ARCH = {"_target_": "restoregan.gans.temporal_restorer.TemporalRestorer", "num_feat": 8, "num_blocks": 1,
        "flow_feat": 8}
LEVEL = 1 / 255  # one 8-bit level: outputs read back from files are rounded to it


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny temporal restorer with random weights; its zero-initialised last layers (the correction, the flow)
    given random values so that each output frame depends visibly on its neighbours."""
    torch.manual_seed(0)
    net = TemporalRestorer(**{k: v for k, v in ARCH.items() if k != "_target_"})
    with torch.no_grad():
        torch.nn.init.normal_(net.recon[-1].weight, std=0.5)
        net.up.weight.mul_(20)  # the propagated state made loud: outputs depend on frames beyond the window
        for block in net.flow.blocks if net.flow is not None else ():
            torch.nn.init.normal_(block[-1].weight, std=0.05)
    base = tmp_path_factory.mktemp("temporal") / "export" / "generator"
    save_export(base, net, ARCH, {"task": VideoRestorationTask(grey=False).config(), "scale": 1})
    return base.with_suffix(".yaml")


@pytest.fixture(scope="module")
def net(export: Path) -> torch.nn.Module:
    return load_model(export, torch.device("cpu")).net.eval()


def pan(photo: str, n: int, h: int = 40, w: int = 56, step: int = 2) -> list[np.ndarray]:
    """n frames (h, w, 3) float32 of a scikit-image photo (shrunk 4x) panned `step` px right per frame; sides no
    multiple of 8 (the network pads them). Rounded to 8-bit levels, so files hold them exactly."""
    img = np.round(getattr(skimage.data, photo)()[::4, ::4]).astype(np.float32) / 255
    return [np.ascontiguousarray(img[10:10 + h, 10 + step * i:10 + step * i + w]) for i in range(n)]


def items_of(frames: list[np.ndarray]) -> list[Item]:
    return [Item(i, 2 * i, Fraction(1, 24), f) for i, f in enumerate(frames)]


def on_net(net: torch.nn.Module, frames: list[np.ndarray]) -> np.ndarray:
    """net on the frames as one clip, (T, H, W, 3) clamped."""
    clip = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in frames])[None]
    with torch.inference_mode():
        return net(clip)[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()


def by_rule(net: torch.nn.Module, frames: list[np.ndarray], window: int, overlap: int,
            cuts: tuple[int, ...] = ()) -> np.ndarray:
    """The documented rule, all frames at once: runs between cuts (a cut before frame c), each cut into chunks of
    `window` from its start, each chunk run with up to `overlap` frames each side within its run."""
    out = np.zeros((len(frames), *frames[0].shape), np.float32)
    bounds = [0, *cuts, len(frames)]
    for r0, r1 in zip(bounds, bounds[1:]):
        for a in range(r0, r1, window):
            b = min(a + window, r1)
            lo, hi = max(r0, a - overlap), min(r1, b + overlap)
            out[a:b] = on_net(net, frames[lo:hi])[a - lo:b - lo]
    return out


def staged(net: torch.nn.Module, frames: list[np.ndarray], window: int, overlap: int) -> np.ndarray:
    stage = ClipStage("restore", net, RunOptions(), window, overlap, SceneCutDetector())
    out = list(stage(iter(items_of(frames))))
    assert [(it.index, it.pts) for it in out] == [(i, 2 * i) for i in range(len(frames))]
    assert all(it.image.dtype == np.float32 and it.image.shape == frames[0].shape for it in out)
    return np.stack([it.image for it in out])


def mismatched(got: np.ndarray, expected: np.ndarray) -> float:
    """The share of samples whose 8-bit levels differ."""
    return float((np.round(got * 255) != np.round(expected * 255)).mean())


def read_video(path: Path) -> np.ndarray:
    """A lossless video's frames as PyAV decodes them, float in [0, 1]."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]) / 255


def read_pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]) / 255


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        write_image(folder / f"frame_{i:03d}.png", f)
    return folder


# --- the stage against the network ---------------------------------------------------------------------------
def test_one_window_is_the_net_on_the_whole_clip(net) -> None:
    frames = pan("astronaut", 7)
    whole = on_net(net, frames)
    np.testing.assert_allclose(staged(net, frames, 16, 4), whole, atol=1e-5)
    np.testing.assert_allclose(staged(net, frames, 7, 0), whole, atol=1e-5)
    # the frames do lean on their neighbours: frame 3 alone comes out otherwise
    assert np.abs(on_net(net, frames[3:4])[0] - whole[3]).max() > 5 * LEVEL


def test_chunks_without_overlap_are_separate_clips(net) -> None:
    frames = pan("astronaut", 10)
    expected = np.concatenate([on_net(net, frames[a:a + 4]) for a in (0, 4, 8)])
    np.testing.assert_allclose(staged(net, frames, 4, 0), expected, atol=1e-5)


@pytest.mark.parametrize(("window", "overlap"), [(3, 2), (4, 1), (2, 5), (1, 1)])
def test_overlapping_chunks_follow_the_rule(net, window: int, overlap: int) -> None:
    frames = pan("astronaut", 9)
    np.testing.assert_allclose(staged(net, frames, window, overlap), by_rule(net, frames, window, overlap),
                               atol=1e-5)


# --- bad input (issue 15's Done-when) -----------------------------------------------------------------------
def test_one_frame_and_a_clip_shorter_than_the_window(net) -> None:
    one = pan("astronaut", 1)
    np.testing.assert_allclose(staged(net, one, 16, 4), on_net(net, one), atol=1e-5)
    three = pan("astronaut", 3)
    np.testing.assert_allclose(staged(net, three, 16, 4), on_net(net, three), atol=1e-5)


@pytest.mark.parametrize(("window", "overlap"), [(16, 4), (4, 2)])
def test_no_state_crosses_a_scene_cut(net, window: int, overlap: int) -> None:
    a, b = pan("astronaut", 5), pan("coffee", 4)
    detector = SceneCutDetector()
    assert detector.cuts(a + b) == [5]  # the clip is what the test says: one cut, between the photos
    out = staged(net, a + b, window, overlap)
    np.testing.assert_allclose(out[:5], by_rule(net, a, window, overlap), atol=1e-5)
    np.testing.assert_allclose(out[5:], by_rule(net, b, window, overlap), atol=1e-5)
    if window == 16:  # the frames before the cut alone, and after it alone
        np.testing.assert_allclose(out[:5], on_net(net, a), atol=1e-5)
        np.testing.assert_allclose(out[5:], on_net(net, b), atol=1e-5)
    # state carried over the cut would have shown: the whole clip as one gives other frames beside it
    assert np.abs(on_net(net, a + b)[4] - out[4]).max() > 5 * LEVEL


def test_one_frame_video_through_infer(export: Path, net, tmp_path: Path) -> None:
    """infer.py ckpt=TEMPORAL input=one-frame.mp4: one frame out, the net on a clip of that one frame."""
    clip = write_clip(tmp_path / "one.mp4", pan("coffee", 1))
    (out,) = infer_in_process([f"ckpt={export}", f"input={clip}", f"output={tmp_path / 'out'}",
                               "video.format=ffv1"])
    got, decoded = read_video(out), read_video(clip).astype(np.float32)
    assert got.shape == (1, 40, 56, 3)
    assert np.abs(got - on_net(net, list(decoded))).max() <= LEVEL


def test_one_image_through_infer(export: Path, net, tmp_path: Path) -> None:
    """A photo (not a sequence) is a clip of one frame."""
    (tmp_path / "in").mkdir()
    photo = write_image(tmp_path / "in" / "photo.png", pan("coffee", 1)[0])
    (out,) = infer_in_process([f"ckpt={export}", f"input={photo}", f"output={tmp_path / 'out'}"])
    got = np.asarray(Image.open(out)) / 255
    assert np.abs(got - on_net(net, pan("coffee", 1))[0]).max() <= LEVEL


def test_frame_folder_is_restored_as_a_sequence(export: Path, net, tmp_path: Path) -> None:
    """infer.py on a folder of PNG frames with a temporal model: the frames restored together (task.sequence),
    window 4 and overlap 1 from task options; frame k is not what the net makes of frame k alone."""
    frames = pan("astronaut", 6)
    folder = write_frames(tmp_path / "frames", frames)
    (out,) = infer_in_process([f"ckpt={export}", f"input={folder}", f"output={tmp_path / 'out'}",
                               "task=restore_video", "task.window=4", "task.overlap=1", "task.grey=false"])
    got = read_pngs(out)
    assert got.shape == (6, 40, 56, 3)
    assert np.abs(got - by_rule(net, frames, 4, 1)).max() <= LEVEL
    alone = np.stack([on_net(net, [f])[0] for f in frames])
    assert all(np.abs(got[k] - alone[k]).max() > 5 * LEVEL for k in range(6))


# --- the film pipeline ---------------------------------------------------------------------------------------
def _film(export: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return [f"input={source}", f"output={out}", "pipeline.order=[restore]", f"stages.restore.ckpt={export}",
            "+stages.restore.window=3", "+stages.restore.overlap=2", "+stages.restore.grey=false",
            "video.segment_frames=5", *extra]


def test_pipeline_segments_follow_the_rule_and_resume_identically(export: Path, net, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """12 frames in segments of 5 (overlap 2, window 3): segment [s, e) is handed frames [s - 2, e + 2) cut to
    the film, chunked from the first of them; a run killed after one segment resumes to the same frames. Grain
    new in every frame makes each frame's output depend on which neighbours it is given."""
    rng = np.random.default_rng(0)
    frames = [np.round(np.clip(f + rng.normal(0, 0.08, f.shape), 0, 1) * 255).astype(np.float32) / 255
              for f in pan("astronaut", 12)]
    folder = write_frames(tmp_path / "frames", frames)
    (clean,) = run_infer(_film(export, folder, tmp_path / "clean.mkv"))
    got = read_video(clean)
    expected = np.zeros_like(got)
    for s in range(0, 12, 5):
        e = min(s + 5, 12)
        a, b = max(0, s - 2), min(12, e + 2)
        expected[s:e] = by_rule(net, frames[a:b], 3, 2)[s - a:e - a]
    assert np.abs(got - expected).max() <= LEVEL and mismatched(got, expected) < 0.001  # rounding ties only
    # the rule is not met by accident: one pass over the whole film, or each segment without its context, gives
    # other frames
    assert np.abs(got - by_rule(net, frames, 3, 2)).max() > 5 * LEVEL
    bare = np.concatenate([on_net(net, frames[s:s + 5]) for s in range(0, 12, 5)])
    assert np.abs(got - bare).max() > 5 * LEVEL

    write = WorkDir.write

    def killed(work: WorkDir, n: int, *args):
        if n == 1:
            raise RuntimeError("killed")
        return write(work, n, *args)

    out = tmp_path / "resumed.mkv"
    monkeypatch.setattr(WorkDir, "write", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run_infer(_film(export, folder, out))
    assert not out.exists()
    monkeypatch.setattr(WorkDir, "write", write)
    (again,) = run_infer(_film(export, folder, out))
    assert np.array_equal(read_video(again), got)


def test_restore_stage_is_chosen_by_the_model_file(export: Path, tmp_path: Path) -> None:
    """One `stages.restore` (task restore): a temporal export becomes a ClipStage with the stage's window and
    overlap, a single-frame restoration export a FrameByFrame stage."""
    single = make_export(tmp_path / "runs", "tiny_restore", "restore")
    for ckpt, kind in ((export, ClipStage), (single, FrameByFrame)):
        extra = ["+stages.restore.window=5", "+stages.restore.overlap=3"] if kind is ClipStage else []
        cfg = compose_infer(["pipeline=film", "device=cpu", f"stages.restore.ckpt={ckpt}", *extra])
        (stage,) = build_stages(cfg, ["restore"], {"restore": ckpt}, RunOptions())
        assert type(stage) is kind
        if kind is ClipStage:
            assert (stage.window, stage.context) == (5, (3, 3))
