"""Interlaced input through the one video path (issue 14): detected from the stream's field order or, untagged, from
combing in its first frames; deinterlaced (bwdif, one frame per frame, timestamps kept) before the first stage;
the output tagged progressive. `video.deinterlace=false` keeps the frames as they are, `true` runs the filter on
any input. An identity model isolates the video path."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from omegaconf import OmegaConf

from interp_utils import scene
from restoregan.data.video import PROGRESSIVE, combing, iter_frames, looks_combed, probe
from restoregan.pipeline.run import decoding
from video_clips import FIELD_TT, gradient_frames, identity_export, make_clip, run_identity, woven_frames


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return identity_export(tmp_path_factory.mktemp("identity"))


def comb(path: Path) -> float:
    """Mean share of combed pixels over a video's frames (read by PyAV, not through restoregan)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") / 255.0 for f in container.decode(video=0)]
    return float(np.mean([combing(f)[0] for f in frames]))


def field_order(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.field_order


def test_combing_tells_woven_fields_from_progressive_frames() -> None:
    woven, moving = woven_frames(4), scene(4)
    frame, fields = combing(woven[1])
    assert frame > 0.05 and fields < 0.01, (frame, fields)
    assert looks_combed(woven)
    # progressive: smooth gradients, and a textured scene with a moving square (edges and detail, no combing)
    assert not looks_combed(gradient_frames(4)) and not looks_combed(moving)
    # fine horizontal stripes comb a frame but also each field: texture, not interlacing
    stripes = np.zeros((48, 64, 3))
    stripes[::4] = stripes[1::4] = 1.0
    assert not looks_combed([stripes])


def test_detection_by_field_order_and_by_combing(tmp_path: Path) -> None:
    vcfg = OmegaConf.create({"deinterlace": "auto", "depth": "auto"})
    flagged = make_clip(tmp_path / "flagged.mp4", interlaced=True)
    info = probe(flagged)
    assert info.field_order == FIELD_TT and info.interlaced and decoding(vcfg, flagged, info).deinterlace
    untagged = make_clip(tmp_path / "untagged.mp4", woven_frames())  # woven fields, coded progressive
    info = probe(untagged)
    assert not info.interlaced and decoding(vcfg, untagged, info).deinterlace  # by combing
    progressive = make_clip(tmp_path / "progressive.mp4", scene(6))
    assert not decoding(vcfg, progressive, probe(progressive)).deinterlace
    assert decoding(OmegaConf.create({"deinterlace": True}), progressive, probe(progressive)).deinterlace
    assert not decoding(OmegaConf.create({"deinterlace": False}), flagged, probe(flagged)).deinterlace


def test_bwdif_keeps_one_frame_per_frame_and_timestamps(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mp4", interlaced=True)
    plain = list(iter_frames(clip))
    deint = list(iter_frames(clip, deinterlace=True))
    assert [f.pts for f in deint] == [f.pts for f in plain]
    assert looks_combed([f.image for f in plain]) and not looks_combed([f.image for f in deint])


def test_interlaced_input_comes_out_progressive(identity: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = make_clip(tmp_path / "reel.mp4", interlaced=True, bits=10, colour=(1, 1, 1, 1))
    out = run_identity(identity, clip, tmp_path / "auto")
    assert "deinterlacing (bwdif)" in capsys.readouterr().out
    before, after = comb(clip), comb(out)
    print(f"combed pixels: input {before:.3f}, deinterlaced output {after:.4f}")
    assert after < before / 10, (before, after)
    assert field_order(out) == PROGRESSIVE
    with av.open(str(out)) as container:
        assert not any(f.interlaced_frame for f in container.decode(video=0))
    # switched off: the fields stay woven, and the output is not claimed progressive
    kept = run_identity(identity, clip, tmp_path / "off", "video.deinterlace=false")
    assert comb(kept) > before * 0.8 and field_order(kept) != PROGRESSIVE


def test_forced_deinterlace_runs_on_progressive_input(identity: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "reel.mp4", scene(6))
    plain = run_identity(identity, clip, tmp_path / "auto")
    forced = run_identity(identity, clip, tmp_path / "forced", "video.deinterlace=true")
    a = np.stack([f.image for f in iter_frames(plain)])
    b = np.stack([f.image for f in iter_frames(forced)])
    source = np.stack([f.image for f in iter_frames(clip)])
    assert np.abs(a - source).max() <= 1.5 / 255  # auto left the progressive clip alone
    assert np.abs(b - source).max() > 4 / 255  # forced: bwdif rebuilt one field of the moving square's edges
    assert field_order(forced) == PROGRESSIVE
