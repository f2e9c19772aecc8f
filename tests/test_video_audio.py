"""infer.py on a video keeps the sound, the timestamps and the duration, for every built-in task (issue 13: one
way to apply a model to video, the film pipeline with one stage, whatever the model's task)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_utils import infer_in_process
from pipeline_utils import ARCHS, moving_clip, streams, write_clip
from restoregan.models import load_model
from restoregan.tasks import builtin_task_classes

FPS, N = 12, 6
# output frames per input frame (interp's default factor 2 puts one new frame between each pair)
RATE = {"sr": 1, "restore": 1, "colorize": 1, "interp": 2}


def test_every_builtin_task_is_covered() -> None:
    classes = list(builtin_task_classes())
    tasks = {c.name for c in classes if not any(o is not c and issubclass(o, c) for o in classes)}  # not bases
    assert set(RATE) == set(ARCHS) == tasks


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames of motion at 12 fps with an AAC track as long as the video."""
    return write_clip(tmp_path_factory.mktemp("clip") / "reel.mp4", moving_clip(N), fps=FPS, audio="aac")


@pytest.mark.parametrize("task", sorted(RATE))
def test_video_keeps_audio_timestamps_and_duration(task: str, runs: Path, clip: Path, tmp_path: Path) -> None:
    path = runs / f"tiny_{task}" / "export" / "generator.safetensors"
    model = load_model(path)
    (out,) = infer_in_process([f"ckpt={path}", f"input={clip}", f"output={tmp_path}", "video.contact_frames=0"])
    assert out == tmp_path / f"reel{model.task.output_suffix}.mp4"
    before, got = streams(clip), streams(out)
    k = RATE[task]
    assert got["frames"] == k * N and got["size"] == (48 * model.scale, 64 * model.scale)
    # every input frame at its own time; new frames (k > 1) evenly between
    assert np.allclose(got["times"][::k], before["times"], atol=1e-6)
    assert np.allclose(np.diff(got["times"]), 1 / (k * FPS), atol=1e-6)
    assert abs(got["video_duration"] - before["video_duration"]) <= 1 / FPS
    # the sound: carried over whole (copied: same codec, rate and end), ending with the picture
    assert got["audio"] == before["audio"] and got["audio"]["codec"] == "aac"
    assert abs(got["audio"]["end"] - before["video_duration"]) <= 1 / FPS
