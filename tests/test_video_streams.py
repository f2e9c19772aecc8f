"""Every audio and subtitle stream of the input reaches the video output (issue 14): copied when the container takes
the codec, text subtitles rewritten between mov_text (mp4) and SubRip (Matroska) when it takes only the other, and
all of them in sync when interpolation doubles the frame rate. Streams read back with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from cli_utils import infer_in_process
from pipeline_utils import moving_clip, streams
from video_clips import identity_export, make_clip, run_identity

CUES = [(0.1, 0.25, "first line"), (0.3, 0.45, "second line")]


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return identity_export(tmp_path_factory.mktemp("identity"))


def subtitle_cues(path: Path) -> tuple[list[str], list[tuple[float, float, str]]]:
    """(codec of each subtitle stream, cues (start s, end s, text) of the first), empty cues skipped; times from
    the first video frame's (a muxer may shift every stream alike, e.g. Matroska past AAC's priming samples)."""
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        zero = float(first.pts * first.time_base)
    with av.open(str(path)) as container:
        codecs = [s.codec_context.name for s in container.streams.subtitles]
        if not codecs:
            return codecs, []
        stream = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            data = bytes(packet)
            text = data[2:2 + int.from_bytes(data[:2], "big")] if stream.codec_context.name == "mov_text" else data
            if text:
                start = float(packet.pts * packet.time_base) - zero
                cues.append((round(start, 3), round(start + float(packet.duration * packet.time_base), 3),
                             text.decode()))
    return codecs, cues


@pytest.mark.parametrize(("suffix", "fmt", "want"), [(".mp4", "h264", "mov_text"), (".mkv", "ffv1", "subrip"),
                                                     (".mkv", "h264", "mov_text"), (".mp4", "ffv1", "subrip")])
def test_subtitles_are_carried_or_converted(identity: Path, tmp_path: Path, suffix: str, fmt: str, want: str) -> None:
    clip = make_clip(tmp_path / f"reel{suffix}", subtitles=CUES, audio="aac")
    out = run_identity(identity, clip, tmp_path / "out", f"video.format={fmt}")
    codecs, cues = subtitle_cues(out)
    assert [c.replace("srt", "subrip") for c in codecs] == [want]
    assert cues == [(a, b, text) for a, b, text in CUES]
    assert streams(out)["audio"]["codec"] == "aac"


def test_subtitles_can_be_switched_off(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mp4", subtitles=CUES)
    out = run_identity(identity, clip, tmp_path / "out", "video.subtitles=false")
    assert subtitle_cues(out) == ([], [])


def test_every_audio_stream_is_carried(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mkv", audio="aac")
    two = tmp_path / "two.mkv"  # the clip's sound twice: a second language track
    with av.open(str(clip)) as src, av.open(str(two), "w") as dst:
        outs = [dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0],
                                                           src.streams.audio[0])]
        for packet in src.demux():
            if packet.dts is None:
                continue
            targets = outs[:1] if packet.stream.type == "video" else outs[1:]
            for target in targets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
                copy.time_base = packet.time_base
                copy.is_keyframe = packet.is_keyframe
                copy.stream = target
                dst.mux(copy)
    out = run_identity(identity, two, tmp_path / "out")
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac", "aac"]


def test_doubled_frame_rate_keeps_sound_and_text_in_sync(runs: Path, tmp_path: Path) -> None:
    fps, n = 12, 6
    clip = make_clip(tmp_path / "reel.mp4", moving_clip(n), fps=fps, audio="aac", subtitles=CUES)
    model = runs / "tiny_interp" / "export" / "generator.safetensors"
    (out,) = infer_in_process([f"ckpt={model}", f"input={clip}", f"output={tmp_path / 'out'}",
                               "video.contact_frames=0"])
    before, after = streams(clip), streams(out)
    assert after["frames"] == 2 * n
    assert abs(after["video_duration"] - before["video_duration"]) <= 1 / (2 * fps)
    assert np.allclose(after["times"][::2], before["times"], atol=1e-6)
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        starts = [float(c.streams.audio[0].start_time * c.streams.audio[0].time_base) for c in (a, b)]
    assert abs(starts[0] - starts[1]) <= 1 / fps
    assert abs(after["audio"]["end"] - before["audio"]["end"]) <= 1 / fps
    assert subtitle_cues(out)[1] == subtitle_cues(clip)[1]
