"""The pipeline's work beside the models: frames decoded ahead in a thread (`ahead`), the output encoded while the
models run (`Assembler`). What must hold: the same files as encoding after the last segment, the encoder really
running before the last segment is computed, and a failure on either side ending the run with its own one-line
error, no output, no temps and no thread left behind."""

from __future__ import annotations

import errno
import json
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from interp_utils import clip_with_cut
from pipeline_utils import frame_hashes, run_infer, streams, write_clip
from restoregan.data.io import read_image
from restoregan.data.video import VideoWriter
from restoregan.pipeline.background import ahead
from restoregan.pipeline.output import Assembler, Encode, Sinks
from restoregan.pipeline.run import overlap_setting
from restoregan.pipeline.segments import WorkDir
from restoregan.tasks.base import Item


# --- ahead ----------------------------------------------------------------------------------------------
def test_ahead_keeps_order_and_runs_in_another_thread() -> None:
    where = []

    def source():
        for i in range(50):
            where.append(threading.current_thread().name)
            yield i

    assert list(ahead(source(), depth=3, name="decode")) == list(range(50))
    assert set(where) == {"decode"}


def test_ahead_raises_the_sources_error_after_the_items_before_it() -> None:
    def source():
        yield 1
        yield 2
        raise ValueError("clip.mp4: frame 2 is corrupt")

    got = []
    with pytest.raises(ValueError, match="frame 2 is corrupt"):
        for item in ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_closing_ahead_stops_the_producer_and_closes_the_source() -> None:
    produced, closed = [], threading.Event()

    def source():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = ahead(source(), depth=4)
    assert next(stream) == 0
    stream.close()
    assert closed.wait(5)
    assert len(produced) < 20  # stopped after the few it ran ahead, not at the end
    assert not [t for t in threading.enumerate() if t.name == "ahead"]


# --- encoding beside the models ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 frames of motion with a scene cut before frame 6, with sound."""
    return write_clip(tmp_path_factory.mktemp("clip") / "reel.mp4", clip_with_cut(6, 5), fps=12, audio="aac")


def _args(runs: Path, clip: Path, out: Path, *extra: str) -> list[str]:
    return [f"input={clip}", f"output={out}", f"pipeline.runs_dir={runs}", "video.segment_frames=3",
            "pipeline.order=[colorize,upscale,interpolate]", "video.side_by_side=true", "video.contact_frames=3",
            *extra]


@pytest.mark.parametrize("extra", [[], ["video.max_frames=7"]], ids=["whole", "shortened"])
def test_encoding_beside_writes_what_encoding_after_writes(runs: Path, clip: Path, tmp_path: Path,
                                                           extra: list[str]) -> None:
    after = run_infer(_args(runs, clip, tmp_path / "after.mp4", "video.overlap=false", *extra))[0]
    beside = run_infer(_args(runs, clip, tmp_path / "beside.mp4", "video.overlap=true", *extra))[0]
    assert frame_hashes(beside) == frame_hashes(after) and len(frame_hashes(after)) == (14 if extra else 22)
    assert streams(beside) == streams(after)  # frame times, durations, and the sound cut at the same place
    assert frame_hashes(tmp_path / "beside_side_by_side.mp4") == frame_hashes(tmp_path / "after_side_by_side.mp4")
    sheets = [read_image(tmp_path / f"{stem}_contact.png") for stem in ("after", "beside")]
    assert sheets[0].shape == sheets[1].shape and np.array_equal(*sheets)


def test_png_frames_beside_equal_after_with_the_sound_cut(runs: Path, clip: Path, tmp_path: Path) -> None:
    outs = {}
    for mode in ("true", "false"):
        out = tmp_path / f"frames_{mode}"
        run_infer(_args(runs, clip, out, f"video.overlap={mode}", "video.max_frames=5"))
        outs[mode] = out
    times = [json.loads((outs[m] / "frames.json").read_text()) for m in ("true", "false")]
    assert times[0] == times[1] and len(times[0]["frames"]) == 10
    for png in sorted(outs["false"].glob("*.png")):
        assert np.array_equal(read_image(png), read_image(outs["true"] / png.name))
    sound = [_packets(outs[m] / "audio.mka") for m in ("true", "false")]
    assert sound[0] == sound[1] and sound[0]  # the same packets (Matroska's own header holds a random id)


def _packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        return [(p.pts, bytes(p)) for p in container.demux(audio=0) if p.pts is not None]


def test_the_encoder_runs_before_the_last_segment_is_computed(runs: Path, clip: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    encoded, write = [], WorkDir.write
    segments_started = []

    def recording_write(self, img, *args, **kwargs):
        if Path(self.name).name == "beside.mp4":  # the output, not a segment of beside.mp4.work/
            encoded.append(time.perf_counter())
        return original_write(self, img, *args, **kwargs)

    def waiting_write(work: WorkDir, n: int, *args):
        segments_started.append(n)
        if n == 3:  # the last of 11 frames in segments of 3: the encoder has had segments 0-2 handed to it
            deadline = time.perf_counter() + 20
            while not encoded and time.perf_counter() < deadline:
                time.sleep(0.02)
            waiting_write.encoded_before_last = len(encoded)
        return write(work, n, *args)

    original_write = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", recording_write)
    monkeypatch.setattr(WorkDir, "write", waiting_write)
    run_infer(_args(runs, clip, tmp_path / "beside.mp4", "video.side_by_side=false", "video.overlap=true"))
    assert segments_started == [0, 1, 2, 3]
    assert waiting_write.encoded_before_last > 0


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   ValueError("libx264 cannot encode 17x9 frames")], ids=["disk_full", "encoder"])
def test_encoder_failure_ends_the_run_in_its_own_words(runs: Path, clip: Path, tmp_path: Path, monkeypatch,
                                                       error: Exception) -> None:
    original_write = VideoWriter.write

    def failing(self, img, *args, **kwargs):
        if Path(self.name).name == "failing.mp4":
            raise type(error)(*error.args)
        return original_write(self, img, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write", failing)
    out = tmp_path / "failing.mp4"
    with pytest.raises(type(error)) as caught:
        run_infer(_args(runs, clip, out, "video.side_by_side=false", "video.overlap=true"))
    # the encoder's own error, not one about the input (the models' side wraps errors that are about the input)
    assert str(caught.value) == str(error) and str(clip) not in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".failing*"))
    assert not [t for t in threading.enumerate() if t.name in ("assemble", "decode")]


def _assembler(tmp_path: Path, n_input: int) -> tuple[Assembler, Path]:
    out = tmp_path / "out.mp4"
    work = WorkDir(tmp_path / "out.mp4.work", {}, resume=False)
    enc = Encode(Sinks(out, "h264", None, None), tmp_path / "unused.mp4", Fraction(12), 18, "auto", audio=False,
                 cut_audio=False, contact_frames=0, contact_side=64, subtitles=False)
    return Assembler(work, enc, n_input), out


def _items(n: int) -> list[Item]:
    return [Item(i, i, Fraction(1, 12), np.full((16, 16, 3), i / n, np.float32)) for i in range(n)]


@pytest.mark.parametrize("queued_end", [False, True], ids=["mid_stream", "after_the_last_frame"])
def test_abort_commits_nothing_even_with_the_end_already_queued(tmp_path: Path, monkeypatch, queued_end: bool) -> None:
    """Ctrl-C while finish() waits for the encoder: the end of the stream is already queued behind frames; the
    abort must still win, with no frame dropped into a committed file."""
    original_write = VideoWriter.write
    written = []

    def slow(self, img, *args, **kwargs):
        time.sleep(0.05)
        written.append(1)
        return original_write(self, img, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write", slow)
    assembler, out = _assembler(tmp_path, 10)
    list(assembler.tee(iter(_items(10)), deep=False))
    if queued_end:
        assembler._put(None)  # what finish() does before it waits
    assembler.abort()
    assert not assembler._thread.is_alive() and len(written) < 10
    assert not out.exists() and not list(tmp_path.glob(".out.mp4*"))


def test_a_wrong_frame_count_in_the_header_is_encoded_again_by_the_frames_there_are(tmp_path: Path) -> None:
    """The streamed contact sheet was placed by the header's count; when the input had fewer frames, finish()
    drops the streamed encode and encodes from the work folder, as a run that does not stream would."""
    assembler, out = _assembler(tmp_path, 12)  # the header promised 12
    segment = assembler.work.write(0, 0, 10, assembler.tee(iter(_items(10)), deep=False))
    written = assembler.finish([segment])
    assert written == [out] and not assembler.streaming and len(frame_hashes(out)) == 10
    assembler.work.close(remove=True)


def test_model_failure_stops_the_encoder_and_leaves_no_output(runs: Path, clip: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    write = WorkDir.write

    def dies_at_segment_2(work: WorkDir, n: int, *args):
        if n == 2:
            raise RuntimeError("killed")
        return write(work, n, *args)

    monkeypatch.setattr(WorkDir, "write", dies_at_segment_2)
    out = tmp_path / "killed.mp4"
    with pytest.raises(RuntimeError, match="killed"):
        run_infer(_args(runs, clip, out, "video.overlap=true"))
    assert not out.exists() and not list(tmp_path.glob(".killed*"))
    assert not (tmp_path / "killed_side_by_side.mp4").exists() and not (tmp_path / "killed_contact.png").exists()
    assert not [t for t in threading.enumerate() if t.name in ("assemble", "decode")]
    # the finished segments stay for a resume
    assert sorted(p.name for p in (tmp_path / "killed.mp4.work").glob("seg_*.json")) == ["seg_000000.json",
                                                                                         "seg_000001.json"]


def test_overlap_is_on_for_cuda_and_off_on_a_cpu_by_default_and_refuses_other_words() -> None:
    assert overlap_setting("auto", torch.device("cuda")) and not overlap_setting("auto", torch.device("cpu"))
    assert overlap_setting(True, torch.device("cpu")) and not overlap_setting("false", torch.device("cuda"))
    with pytest.raises(ValueError, match=r"^video\.overlap=sometimes: must be auto, true, false$"):
        overlap_setting("sometimes", torch.device("cpu"))


def test_an_input_that_does_not_say_its_frame_count_is_encoded_after(runs: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    """Matroska keeps no frame count: the contact sheet cannot be placed in advance, so the encode waits for the
    last segment (and gives what encoding after gives)."""
    source = tmp_path / "reel.mkv"
    writer = VideoWriter(source, Fraction(12), "ffv1", None, "auto", "matroska")
    for img in clip_with_cut(3, 4):
        writer.write(img)
    writer.close()
    streaming = []
    init = Assembler.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        streaming.append(self.streaming)

    monkeypatch.setattr(Assembler, "__init__", recording_init)
    outs = [run_infer([f"input={source}", f"output={tmp_path / f'{m}.mkv'}", f"pipeline.runs_dir={runs}",
                       "pipeline.order=[upscale]", "video.segment_frames=4", f"video.overlap={m}"])[0]
            for m in ("true", "false")]
    assert streaming == [False, False]
    assert frame_hashes(outs[0]) == frame_hashes(outs[1]) and len(frame_hashes(outs[0])) == 7
