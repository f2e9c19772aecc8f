"""Film pipeline safety: a run killed part-way resumes from its last complete segment and writes the very frames
(hashes) an uninterrupted run writes; a damaged segment is redone; a changed config is not mixed in; corrupt or
truncated input ends in one line and no output; the input is never modified."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import ROOT
from interp_utils import clip_with_cut
from pipeline_utils import frame_hashes, moving_clip, run_infer, streams, write_clip
from restoregan.pipeline.segments import WorkDir

STATEFUL = "pipeline.order=[colorize,upscale,interpolate]"  # the stages whose state crosses segments


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 frames of motion with a scene cut before frame 6, with sound."""
    return write_clip(tmp_path_factory.mktemp("clip") / "reel.mp4", clip_with_cut(6, 5), fps=12, audio="aac")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(runs: Path, clip: Path, out: Path, *extra: str) -> list[str]:
    return [f"input={clip}", f"output={out}", f"pipeline.runs_dir={runs}", "video.segment_frames=3", *extra]


_WRITE = WorkDir.write


def _killer(after: int | None):
    """A WorkDir.write that dies before segment number `after` + 1 is written; `.written` lists what it wrote."""

    def write(work: WorkDir, n: int, *args):
        if after is not None and len(write.written) == after:
            raise RuntimeError("killed")
        write.written.append(n)
        return _WRITE(work, n, *args)

    write.written = []
    return write


def test_resumed_run_equals_uninterrupted_run(runs: Path, clip: Path, tmp_path: Path, monkeypatch) -> None:
    input_sha = _sha(clip)
    (clean,) = run_infer(_args(runs, clip, tmp_path / "clean.mp4", STATEFUL))
    expected = frame_hashes(clean)
    assert len(expected) == 22 and _sha(clip) == input_sha  # 11 frames x2; the input untouched

    out = tmp_path / "resumed.mp4"
    killer = _killer(2)
    monkeypatch.setattr(WorkDir, "write", killer)
    with pytest.raises(RuntimeError, match="killed"):
        run_infer(_args(runs, clip, out, STATEFUL))
    assert not out.exists() and not list(tmp_path.glob(".resumed.mp4*"))  # nothing that looks like a result
    work = tmp_path / "resumed.mp4.work"
    assert sorted(p.name for p in work.glob("seg_*.json")) == ["seg_000000.json", "seg_000001.json"]
    # a damaged segment (e.g. a disk error, or killed while the record was trusted) is found and redone
    seg1 = work / "seg_000001.mkv"
    seg1.write_bytes(seg1.read_bytes()[:-100])

    killer = _killer(None)
    monkeypatch.setattr(WorkDir, "write", killer)
    (again,) = run_infer(_args(runs, clip, out, STATEFUL))
    assert killer.written == [1, 2, 3]  # segment 0 reused; 1 redone; 2 and 3 (frames 6-10) computed
    assert frame_hashes(again) == expected
    assert streams(again)["audio"] == streams(clean)["audio"]
    assert not work.exists() and _sha(clip) == input_sha


def test_segments_of_another_config_are_not_reused(runs: Path, clip: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "o.mp4"
    monkeypatch.setattr(WorkDir, "write", _killer(1))
    with pytest.raises(RuntimeError):
        run_infer(_args(runs, clip, out, "pipeline.order=[upscale]"))
    monkeypatch.setattr(WorkDir, "write", _killer(None))
    with pytest.raises(ValueError, match=r"o\.mp4\.work: holds segments of a run with another configuration .*"
                                         r"video\.resume=false"):
        run_infer(_args(runs, clip, out, "pipeline.order=[upscale]", "tile=16"))
    killer = _killer(None)
    monkeypatch.setattr(WorkDir, "write", killer)
    run_infer(_args(runs, clip, out, "pipeline.order=[upscale]", "tile=16", "video.resume=false"))
    assert killer.written == [0, 1, 2, 3] and out.exists()


def test_two_runs_on_one_output_are_refused(tmp_path: Path) -> None:
    first = WorkDir(tmp_path / "x.mp4.work", {"config_hash": "a", "input": {}}, True)
    with pytest.raises(ValueError, match="another run is writing this output"):
        WorkDir(tmp_path / "x.mp4.work", {"config_hash": "a", "input": {}}, True)
    first.close(remove=True)
    assert not (tmp_path / "x.mp4.work").exists()


def _pipeline_cmd(runs: Path, clip: Path, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "infer.py"), "pipeline=film", "device=cpu", f"input={clip}", f"output={out}",
            f"pipeline.runs_dir={runs}", "video.segment_frames=1"]


@pytest.mark.slow
def test_killed_process_resumes_to_identical_frames(runs: Path, tmp_path: Path) -> None:
    """A real SIGKILL in the middle of the four-stage pipeline (default order), then the same command again."""
    clip = write_clip(tmp_path / "reel.mp4", moving_clip(10), fps=12)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_pipeline_cmd(runs, clip, tmp_path / "clean.mp4"), env=env, check=True, capture_output=True)

    out = tmp_path / "killed.mp4"
    proc = subprocess.Popen(_pipeline_cmd(runs, clip, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    marker = tmp_path / "killed.mp4.work" / "seg_000002.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed; the test needs a slower run"
    done = sorted((tmp_path / "killed.mp4.work").glob("seg_*.json"))
    assert 3 <= len(done) < 10

    result = subprocess.run(_pipeline_cmd(runs, clip, out), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done before" in result.stderr  # the progress bar says segments were reused
    assert frame_hashes(out) == frame_hashes(tmp_path / "clean.mp4")


def _faststart_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """An mp4 with its index first (as streaming sites write them): truncating it keeps it openable."""
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.options = {"qp": "0"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("damage", ["index_lost", "tail_lost", "not_a_video"])
def test_corrupt_or_truncated_input_one_line_error_no_output(runs: Path, tmp_path: Path, damage: str) -> None:
    frames = moving_clip(12)
    bad = tmp_path / "bad.mp4"
    if damage == "index_lost":  # moov at the end, cut off
        data = write_clip(tmp_path / "full.mp4", frames).read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "tail_lost":  # index intact, the last frames' data gone
        data = _faststart_clip(tmp_path / "full.mp4", frames).read_bytes()
        bad.write_bytes(data[: int(len(data) * 0.6)])
    else:
        bad.write_bytes(b"this is not a video" * 100)
    input_sha = _sha(bad)
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError) as err:
        run_infer(_args(runs, bad, out, "pipeline.order=[upscale,interpolate]"))
    message = str(err.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    expected = {"index_lost": "not a readable video", "tail_lost": "corrupt", "not_a_video": "not a readable video"}
    assert expected[damage] in message
    assert not out.exists() and not list(tmp_path.glob(".out.mp4*")) and _sha(bad) == input_sha


def test_command_line_error_is_one_line(runs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    out = tmp_path / "out.mp4"
    result = subprocess.run(_pipeline_cmd(runs, bad, out), capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}: ") and not out.exists()
