"""Inputs are never overwritten; outputs are whole or absent (issue 12, Must have 2; odd-size videos of 7).

- outputs that are, or would land among, an input (same path, symlink, hard link, a model file, an input
  folder) are refused in one line naming both, the input's bytes unchanged: evaluate, infer, the pipeline;
- a simulated full disk (the lowest write failing half-way, as write() does) leaves no file under a final
  name and the previous outputs intact, the error naming the output: exports, reports, infer, pipeline;
- temps of a killed run are removed by the next one (only ours), files get the user's umask;
- odd-size videos are encoded at their size (PyAV reads them back), encoder errors name output and config key.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from cli_utils import compose_conf, infer_in_process
from pipeline_utils import ARCHS, export_meta, make_export, moving_clip, run_infer, streams, write_clip
from restoregan.atomic import atomic_write
from restoregan.data.video import VideoWriter
from restoregan.evaluation.loop import evaluate_models
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.tasks.base import RunOptions
from restoregan.tasks.sr import SuperResolutionTask


def _images(folder: Path, names: list[str], size: tuple[int, int] = (32, 32)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (dot-files included) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _full_disk(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Path.write_bytes / write_text of a temp file named `prefix`*: half the data, then ENOSPC with no file
    name, as a real write() on a full disk fails."""
    for method in ("write_bytes", "write_text"):
        real = getattr(Path, method)

        def write(self: Path, data, *args, _real=real, **kwargs):
            if self.name.startswith(prefix):
                _real(self, data[: len(data) // 2], *args, **kwargs)
                raise OSError(errno.ENOSPC, "No space left on device")
            return _real(self, data, *args, **kwargs)

        monkeypatch.setattr(Path, method, write)


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _video(path: Path, w: int = 32, h: int = 32, n: int = 3) -> Path:
    return write_clip(path, [np.full((h, w, 3), 0.2 + 0.2 * i, np.float32) for i in range(n)], fps=12)


def _restore_model(runs: Path) -> Path:
    return runs / "tiny_restore" / "export" / "generator.yaml"


# --- evaluate ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["hr_dir", "inside_hr_dir"])
def test_evaluate_report_into_the_hr_folder_is_refused(tmp_path: Path, where: str) -> None:
    hr = _images(tmp_path / "hr", ["a.png", "comparison.png"])
    (hr / "metrics.json").write_text('{"mine": true}\n')
    before = _tree(hr)
    out = hr if where == "hr_dir" else hr / "eval"
    with pytest.raises(ValueError) as info:
        evaluate(compose_conf("evaluate", [f"hr_dir={hr}", f"out_dir={out}", "device=cpu", "lpips=false", "task=sr"]))
    msg = str(info.value)
    assert msg.startswith(f"{out / 'metrics.json'}: output would ") and "\n" not in msg
    assert ("overwrite an input;" if where == "hr_dir" else f"the input folder {hr}") in msg
    assert _tree(hr) == before
    # the library function refuses as well, however the folder is spelled
    (hr / "metrics.json").unlink()
    before = _tree(hr)
    cfg = compose_conf("evaluate", [f"hr_dir={hr}", f"out_dir={tmp_path / 'x' / '..' / 'hr'}", "lpips=false"])
    with pytest.raises(ValueError, match=r"metrics.json: output would be written into the input folder"):
        evaluate_models(SuperResolutionTask(4), {}, cfg, RunOptions())
    assert _tree(hr) == before


def test_evaluate_disk_full_keeps_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hr = _images(tmp_path / "hr", ["a.png", "b.png"])
    out = tmp_path / "eval"
    args = [f"hr_dir={hr}", f"out_dir={out}", "device=cpu", "lpips=false", "task=sr", "task.scale=2"]
    evaluate(compose_conf("evaluate", args))
    before = _tree(out)
    assert sorted(before) == ["comparison.png", "metrics.json", "metrics.md"]
    (out / ".metrics.json.k1lled00.tmp").write_text('{"half": ')  # a killed run's temp
    _full_disk(monkeypatch, ".comparison.png.")  # json and md are written (aside), then the grid fails
    with pytest.raises(OSError) as info:
        evaluate(compose_conf("evaluate", [*args, "dataset=second"]))  # would change metrics.json
    assert _tree(out) == before  # old report whole, no new file, no temp (the stale one removed too)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "comparison.png")


# --- exports --------------------------------------------------------------------------------------------
def test_export_disk_full_keeps_the_previous_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_export(tmp_path, "run", "restore", seed=0)
    folder = tmp_path / "run" / "export"
    before = _tree(folder)
    from restoregan.gans.rrdbnet import RRDBNet

    arch, meta = ARCHS["restore"][0], export_meta("restore")
    torch.manual_seed(1)
    net = RRDBNet(**{k: v for k, v in arch.items() if k != "_target_"})
    _full_disk(monkeypatch, ".generator.yaml.")  # the weights are complete (aside) when the yaml fails
    with pytest.raises(OSError) as info:
        save_export(folder / "generator", net, arch, meta)
    assert _tree(folder) == before  # never new weights beside an old description
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(folder / "generator.yaml")


def test_io_error_of_a_rust_writer_names_the_output(tmp_path: Path) -> None:
    """safetensors reports a full disk as `SafetensorError(... (os error 28))`, naming no file."""
    target = tmp_path / "w.safetensors"

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(OSError) as info:
        atomic_write(target, write)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


# --- infer ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["symlink", "hardlink", "model_hardlink", "inside_input_folder"])
def test_infer_output_that_hits_an_input_is_refused(runs: Path, tmp_path: Path, case: str) -> None:
    model = _restore_model(runs)
    src = _images(tmp_path / "in", ["a.png"])
    out = src / "restored" if case == "inside_input_folder" else tmp_path / "out"
    out.mkdir()
    victim = model.with_suffix(".safetensors") if case == "model_hardlink" else src / "a.png"
    target = out / "a_restored.png"
    if case == "symlink":
        target.symlink_to(victim)
    elif case != "inside_input_folder":
        os.link(victim, target)
    protected = victim.read_bytes()
    with pytest.raises(ValueError) as info:
        infer_in_process([f"ckpt={model}", f"input={src}", f"output={out}"])
    msg = str(info.value)
    assert msg.startswith(f"{target}: output would ") and "\n" not in msg
    assert (f"input folder {src}" if case == "inside_input_folder" else f"an input ({victim})") in msg
    assert victim.read_bytes() == protected


def test_infer_disk_full_leaves_no_partial_image(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _images(tmp_path / "in", ["1.png", "2.png"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "2_restored.png").write_bytes(b"previous result")
    (out / ".1_restored.png.k1lled00.tmp").write_bytes(b"killed")
    (out / ".1_restored.png.notes").write_bytes(b"not ours")
    _full_disk(monkeypatch, ".2_restored.png.")
    with pytest.raises(OSError) as info:
        infer_in_process([f"ckpt={_restore_model(runs)}", f"input={src}", f"output={out}"])
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "2_restored.png")
    assert sorted(p.name for p in out.iterdir()) == [".1_restored.png.notes", "1_restored.png", "2_restored.png"]
    assert (out / "2_restored.png").read_bytes() == b"previous result"
    assert Image.open(out / "1_restored.png").size == (32, 32)  # the image before the failure is whole


def test_infer_video_disk_full_names_the_output(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final encode fails: the error names the output, no output file appears (nor the contact sheet written
    beside it), and the computed segments stay for the rerun, which completes."""
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    real = VideoWriter.write

    def write(self: VideoWriter, *args, **kwargs) -> None:
        if self.name == out / "clip_restored.mp4" and self.count == 2:  # as PyAV's mux fails: naming the temp
            raise av.error.OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real(self, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write", write)
    args = [f"ckpt={_restore_model(runs)}", f"input={clip}", f"output={out}"]
    with pytest.raises(OSError) as info:
        infer_in_process(args)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "clip_restored.mp4")
    assert [p.name for p in out.iterdir()] == ["clip_restored.mp4.work"]  # segments kept for the rerun
    monkeypatch.undo()
    assert infer_in_process(args) == [out / "clip_restored.mp4"]
    assert sorted(p.name for p in out.iterdir()) == ["clip_restored.mp4", "clip_restored_contact.png"]


def test_frame_folder_output_replaces_the_previous_one_whole(runs: Path, tmp_path: Path) -> None:
    """interp frames: written into a temp folder that replaces the old one, so no frame of a longer earlier run
    stays behind (and the folder gets the umask's mode, not mkdtemp's 0700)."""
    src = _images(tmp_path / "reel", ["1.png", "2.png", "3.png"])
    old = _images(tmp_path / "out" / "reel_x2", ["000000.png", "000099.png"])
    (old / "notes.txt").write_text("from an earlier run")
    model = runs / "tiny_interp" / "export" / "generator.yaml"
    with _umask(0o022):
        (frames,) = infer_in_process([f"ckpt={model}", f"input={src}", f"output={tmp_path / 'out'}",
                                      "video.contact_frames=0"])
    assert frames == old
    assert sorted(p.name for p in frames.iterdir()) == [f"{i:06d}.png" for i in range(6)] + ["frames.json"]
    assert _mode(frames) == 0o755 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["reel_x2"]


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_get_the_users_umask(runs: Path, tmp_path: Path, mask: int) -> None:
    expected = 0o666 & ~mask
    clip, src = _video(tmp_path / "clip.mp4"), _images(tmp_path / "in", ["a.png"])
    with _umask(mask):
        make_export(tmp_path / "runs", "r", "restore")
        (video,) = infer_in_process([f"ckpt={_restore_model(runs)}", f"input={clip}", f"output={tmp_path / 'o'}"])
        (image,) = infer_in_process([f"ckpt={_restore_model(runs)}", f"input={src}", f"output={tmp_path / 'o'}"])
        evaluate(compose_conf("evaluate", [f"hr_dir={src}", f"out_dir={tmp_path / 'e'}", "device=cpu",
                                           "lpips=false", "task=sr", "task.scale=2"]))
    contact = tmp_path / "o" / "clip_restored_contact.png"
    written = [*(tmp_path / "runs" / "r" / "export").iterdir(), video, contact, image, *(tmp_path / "e").iterdir()]
    assert len(written) == 8
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(expected) for p in written}


# --- odd sizes and encoder errors -----------------------------------------------------------------------
def test_odd_size_video_is_written_at_its_size(runs: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    clip = _video(tmp_path / "odd.mp4", w=33, h=35)
    out = tmp_path / "out" / "odd_restored.mp4"
    assert infer_in_process([f"ckpt={_restore_model(runs)}", f"input={clip}", f"output={out.parent}",
                             "video.pix_fmt=yuv420p"]) == [out]
    got = streams(out)
    assert got["size"] == (35, 33) and got["frames"] == 3
    with av.open(str(out)) as container:
        assert all((f.width, f.height) == (33, 35) for f in container.decode(video=0))
    notice = [line for line in capfd.readouterr().err.splitlines() if "needs even sides" in line]
    assert len(notice) == 1 and str(out) in notice[0] and "video.pix_fmt" in notice[0]


@pytest.mark.parametrize(("options", "name"), [(["video.pix_fmt=rgb5"], "clip_restored.mp4"),  # no such format
                                              (["video.pix_fmt=rgb24"], "clip_restored.mp4"),  # not for libx264
                                              (["video.format=ffv1", "video.pix_fmt=nv12"], "clip_restored.mkv")])
def test_encoder_errors_name_the_output_and_the_key(runs: Path, tmp_path: Path, options: list[str], name: str) -> None:
    """Refused before any frame is computed (a trial encode of the output's settings), nothing written."""
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    with pytest.raises(ValueError) as info:
        infer_in_process([f"ckpt={_restore_model(runs)}", f"input={clip}", f"output={out}", *options])
    msg = str(info.value)
    assert msg.startswith(f"{out / name}: ") and "video.pix_fmt=" in msg and ".tmp" not in msg
    assert not out.exists() or list(out.iterdir()) == []


# --- pipeline -------------------------------------------------------------------------------------------
def _pipeline_args(runs: Path, clip: Path, out: Path, *extra: str) -> list[str]:
    return [f"input={clip}", f"output={out}", f"pipeline.runs_dir={runs}", "pipeline.order=[restore]",
            f"stages.restore.ckpt={_restore_model(runs)}", "video.segment_frames=4", *extra]


@pytest.mark.parametrize("case", ["symlink_to_input", "side_by_side_is_input", "model_hardlink", "in_frame_folder"])
def test_pipeline_output_that_hits_an_input_is_refused(runs: Path, tmp_path: Path, case: str) -> None:
    clip = _video(tmp_path / "reel.mp4")
    out, victim = tmp_path / "out.mp4", clip
    if case == "symlink_to_input":
        out.symlink_to(clip)
    elif case == "side_by_side_is_input":
        clip = _video(tmp_path / "out_side_by_side.mp4")
        victim = clip
    elif case == "model_hardlink":
        victim = _restore_model(runs).with_suffix(".safetensors")
        os.link(victim, out)
    else:
        clip = _images(tmp_path / "frames", ["1.png", "2.png"])
        out, victim = clip / "out.mp4", clip / "1.png"
    protected = victim.read_bytes()
    with pytest.raises(ValueError) as info:
        run_infer(_pipeline_args(runs, clip, out, "video.side_by_side=true"))
    msg = str(info.value)
    assert str(clip if case == "in_frame_folder" else victim) in msg and "\n" not in msg
    assert victim.read_bytes() == protected and not out.with_name("out.mp4.work").exists()


def test_pipeline_disk_full_then_resume_removes_temps(runs: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _video(tmp_path / "reel.mp4", n=4)
    out, contact, sbs = tmp_path / "out.mp4", tmp_path / "out_contact.png", tmp_path / "out_side_by_side.mp4"
    out.write_bytes(b"previous film")
    contact.write_bytes(b"previous sheet")
    stale = [tmp_path / ".out.mp4.k1lled00.tmp", tmp_path / ".out_side_by_side.mp4.abcdefgh.tmp"]
    others = [tmp_path / ".reel.mp4.abcdefgh.tmp", tmp_path / ".out.mp4.notes"]  # not temps of our outputs
    for path in stale + others:
        path.write_bytes(b"x")
    args = _pipeline_args(runs, clip, out, "video.side_by_side=true", "video.contact_frames=2")
    real_save = Image.Image.save

    def save(self: Image.Image, fp, *a, **k) -> None:
        if Path(str(fp)).name.startswith(".out_contact.png."):  # the film and side-by-side are complete (aside)
            Path(fp).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(OSError) as info:
        run_infer(args)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(contact)
    assert out.read_bytes() == b"previous film" and contact.read_bytes() == b"previous sheet" and not sbs.exists()
    assert not [p for p in stale if p.exists()] and all(p.exists() for p in others)
    assert not [p for p in tmp_path.glob(".out*.tmp")]
    monkeypatch.undo()
    with _umask(0o027):  # the resumed run's outputs, with the user's umask
        assert run_infer(args) == [out]
    assert streams(out)["frames"] == 4 and streams(sbs)["size"] == (32, 64)
    assert Image.open(contact).size[0] > 0
    assert {oct(_mode(p)) for p in (out, sbs, contact)} == {oct(0o640)}
    assert all(p.exists() for p in others) and not list(tmp_path.glob(".out*.tmp"))


def test_pipeline_odd_size_output_plays_at_its_size(runs: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "reel.mp4", [f[:35, :33] for f in moving_clip(3)], fps=12)
    out = tmp_path / "out.mp4"
    run_infer(_pipeline_args(runs, clip, out, "video.pix_fmt=yuv420p", "video.side_by_side=true",
                             "video.contact_frames=0"))
    assert streams(out)["size"] == (35, 33) and streams(out)["frames"] == 3
    assert streams(tmp_path / "out_side_by_side.mp4")["size"] == (35, 66)
