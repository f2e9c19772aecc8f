"""Every command README.md and docs/ show runs as written, on stand-ins for its placeholders (tests/doc_commands.py).

Training commands run shrunk (two iterations on 32x32 patches, one block deep, in a folder of the test's), in
the command's own configuration otherwise; what needs a GPU, several devices or the network is composed (every
key and group checked) but not run, and says so. evaluate.py and infer.py run on CPU on tiny models and the
first frames of a clip. `make demo`/`make bench` and the bench scripts are timed jobs of many minutes, run by
hand (bench/README.md); `make test` is this suite: for those the test checks the target or script exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from cli_utils import compose_conf
from community_files import save_as_user
from conftest import ROOT
from doc_commands import Command, Workspace, doc_commands, run_models
from restoregan.gans.checkpoint import save_export
from restoregan.gans.srresnet import SRResNet
from restoregan.tasks.sr import SuperResolutionTask
from pipeline_utils import make_export, moving_clip, write_clip
from train_utils import tiny_overrides

COMMANDS = doc_commands()
pytestmark = pytest.mark.slow

# Overrides that need what this machine lacks: the command is composed, not run.
NEEDS = {"trainer=gpu": "a GPU", "trainer.accelerator=gpu": "a GPU", "trainer=fsdp": "several GPUs (FSDP)",
         }


def _image(path: Path, side: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
    Image.fromarray(base).resize((side, side), Image.BICUBIC).save(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("docs")
    files, images, lr = root / "files", root / "images", root / "lr"
    for folder in (files, images, lr, root / "imagefolder" / "train"):
        folder.mkdir(parents=True)
    for i in range(4):
        _image(images / f"img{i}.png", 48, i)
        Image.open(images / f"img{i}.png").resize((12, 12), Image.BICUBIC).save(lr / f"img{i}.png")
        shutil.copy(images / f"img{i}.png", root / "imagefolder" / "train" / f"img{i}.png")
    from restoregan.data.shards import main as shards_main

    assert shards_main(["write", str(images), str(root / "shards"), "--shard-size", "2"]) == 0

    frames = moving_clip(8)
    for name in ("reel.mp4", "film.mp4", "a.mp4", "b.mp4"):
        write_clip(files / name, frames, audio="aac")
    (files / "out").mkdir()
    shutil.copy(files / "reel.mp4", files / "out" / "reel_color.mp4")  # a "processed" reel for the temporal report
    for folder in ("reel_frames", "frames"):
        (files / folder).mkdir()
        for i, img in enumerate(frames):
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(files / folder / f"{i:04d}.png")
    shutil.copytree(images, files / "folder")
    shutil.copy(images / "img0.png", files / "photo.png")
    Image.open(images / "img1.png").save(files / "photo.jpg", quality=95)

    for task in ("sr", "colorize", "interp", "restore"):
        _export(files / "runs", f"tiny_{task}", task)
    for path, task in run_models(COMMANDS).items():
        yaml = _export(files / "runs", path.split("/")[1], task)
        assert yaml.with_suffix("." + path.rsplit(".", 1)[1]).exists()
    for name, task in (("a", "sr"), ("my_denoiser", "restore")):
        exported = _export(root / "made", name, task)
        for suffix in (".safetensors", ".yaml"):
            shutil.copy(exported.with_suffix(suffix), files / f"{name}{suffix}")
    from restoregan.gans.rrdbnet import RRDBNet

    torch.manual_seed(0)
    torch.save(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4).state_dict(), files / "RealESRGAN_x4plus.pth")
    _lightning_checkpoint(root / "trained", files / "b.ckpt")
    (files / "runs" / "sr" / "checkpoints").mkdir(parents=True)
    shutil.copy(files / "b.ckpt", files / "runs" / "sr" / "checkpoints" / "last.ckpt")
    # community files under the names the README gives them (built from the manifests: tests/community_files.py)
    (root / "community").mkdir()
    for fmt, name in (("scunet", "scunet_color_real_psnr.pth"), ("ddcolor_paper_tiny", "ddcolor_paper_tiny.pth"),
                      ("rife_v4_6", "train_log/flownet.pkl")):
        (files / name).parent.mkdir(exist_ok=True)
        shutil.copy(save_as_user(fmt, root / "community"), files / name)
    # an evaluate.py report of runs/sr's export, for export.py's scores=
    from restoregan.evaluation.run import evaluate

    evaluate(compose_conf("evaluate", [f"ckpt={files / 'runs/sr/export/generator.safetensors'}",
                                       f"hr_dir={images}", f"out_dir={files / 'eval'}", "device=cpu", "lpips=false"]))
    return Workspace(files, images, lr, root / "imagefolder", root / "shards")


def _export(runs: Path, run: str, task: str) -> Path:
    """A tiny export of `task`; super-resolution x4, as the documented runs are (sr_quickstart, ESRGAN, Real-ESRGAN)."""
    if task == "restore_video":  # the temporal restorer: its exports say task "restore", so no name finds it
        from restoregan.gans.temporal_restorer import TemporalRestorer
        from restoregan.tasks.restore_video import VideoRestorationTask

        arch = {"_target_": "restoregan.gans.temporal_restorer.TemporalRestorer", "num_feat": 8, "num_blocks": 1,
                "flow_feat": 8}
        torch.manual_seed(0)
        save_export(runs / run / "export" / "generator", TemporalRestorer(num_feat=8, num_blocks=1, flow_feat=8),
                    arch, {"task": VideoRestorationTask().config(), "scale": 1})
        return runs / run / "export" / "generator.yaml"
    if task != "sr":
        return make_export(runs, run, task)
    arch = {"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 1, "scale": 4}
    torch.manual_seed(0)
    save_export(runs / run / "export" / "generator", SRResNet(num_feat=8, num_block=1, scale=4), arch,
                {"task": SuperResolutionTask(4).config(), "scale": 4})
    return runs / run / "export" / "generator.yaml"


def _lightning_checkpoint(run_dir: Path, to: Path) -> None:
    from restoregan.training.run import train

    result = train(compose_conf("train", tiny_overrides(run_dir) + ["pretrain_iters=1", "gan_iters=1",
                                                                 "generator.num_block=1"]))
    shutil.copy(result.last_checkpoint, to)


def _folder(workspace: Workspace, tmp_path: Path) -> Path:
    """The command's own folder: the stand-in files linked in, `out/` a folder of its own (outputs land there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for entry in workspace.files.iterdir():
        if entry.name in ("out", "eval"):  # folders outputs are written into
            (cwd / entry.name).mkdir()
            for inner in entry.iterdir():
                (cwd / entry.name / inner.name).symlink_to(inner)
        else:
            (cwd / entry.name).symlink_to(entry)
    return cwd


def _overrides(command: Command, workspace: Workspace) -> list[str]:
    out = []
    for arg in command.args:
        key, eq, value = arg.partition("=")
        if not eq or key.startswith("-"):  # a positional argument (shards' source and folder) or a flag
            out.append(workspace.value("", arg, command.doc))
        else:
            out.append(f"{key}={workspace.value(key.lstrip('+~'), value, command.doc)}")
    return out


def _needs(args: list[str]) -> str | None:
    for word, what in NEEDS.items():
        if any(word in arg for arg in args):
            return what
    return None


def _small_networks(experiment: str) -> list[str]:
    """The `_small` generator and discriminator of an experiment's full-size ones (conf/<group>/<name>_small.yaml):
    a full discriminator's backward alone takes minutes on a CPU; the experiment's data, losses and schedule stay."""
    text = (ROOT / "conf" / "experiment" / f"{experiment}.yaml").read_text()
    out = []
    for group in ("generator", "discriminator"):
        match = re.search(rf"override /{group}: (\w+)", text)
        if match and (ROOT / "conf" / group / f"{match.group(1)}_small.yaml").exists():
            out.append(f"{group}={match.group(1)}_small")
    return out


def _train(command: Command, args: list[str], tmp_path: Path) -> str | None:
    from restoregan.training.run import train

    experiment = [a for a in args if a.startswith("experiment=")]
    if any("<hub" in a for a in args):  # not even composable: Hydra's grammar has no `<`
        return "not run: needs the network (a Hugging Face Hub dataset)"
    shrink = [o for o in tiny_overrides(tmp_path / "run") if not o.startswith("experiment=")]
    shrink += ["pretrain_iters=1", "gan_iters=1", "trainer.devices=1"]
    assert experiment, f"{command.id}: no experiment= (every documented training command names one)"
    shrink += _small_networks(experiment[-1].split("=", 1)[1])
    cfg = compose_conf("train", args + shrink)
    needs = _needs(args)
    if needs:
        return f"composed only: needs {needs}"
    if cfg.trainer.get("strategy") not in (None, "auto"):
        # DDP in this process would leave a process group and its env (MASTER_PORT, ...) to every later test;
        # tests/test_train.py::test_ddp_two_processes_on_cpu runs trainer=ddp in its own two processes
        return f"composed only: strategy {cfg.trainer.strategy} runs in processes of its own (test_train.py)"
    with open_dict(cfg):
        if cfg.get("d_pretrain_iters"):  # the discriminator's own pretraining (film_restore: 2000 iterations)
            cfg.d_pretrain_iters = 1
        if "num_block" in cfg.generator:  # depth is not under test here; the composition is
            cfg.generator.num_block = 1
        if cfg.get("data", {}).get("val", {}).get("max_images") is not None:
            cfg.data.val.max_images = 2
    result = train(cfg)
    assert result.export is not None and Path(f"{result.export}.safetensors").exists(), command.id
    return None


def _run(command: Command, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    script, args = command.script, _overrides(command, workspace)
    if script == "make":
        targets = (ROOT / "Makefile").read_text()
        assert f"\n{args[0]}:" in targets, f"{command.id}: no `make {args[0]}` target"
        return "not run: a job of minutes (make test is this suite)"
    if script.startswith("bench/"):
        assert (ROOT / script).exists(), f"{command.id}: {script} does not exist"
        return "not run: a bench of minutes, run by hand (bench/README.md)"
    monkeypatch.chdir(_folder(workspace, tmp_path))
    if script == "-m restoregan.data.shards" and args[:1] == ["write"]:
        args[2] = str(tmp_path / "shards")  # a folder of the command's own, not /data/shards or /tmp/shards
    if "--help" in args or "-m" in args or script.startswith("restoregan-") or script == "-m restoregan.data.shards":
        exe = [sys.executable, str(ROOT / script)] if script.endswith(".py") else None
        if script.startswith("restoregan-"):
            exe = [str(Path(sys.executable).parent / script)]
        elif script.startswith("-m "):
            exe = [sys.executable, "-m", script[3:]]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(exe + args, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"{command.id}: {proc.stderr[-2000:]}"
        return None
    if script == "train.py":
        return _train(command, args, tmp_path)
    if script == "evaluate.py":
        from restoregan.evaluation.run import evaluate

        cfg = compose_conf("evaluate", args + ["device=cpu"])
        evaluate(cfg)
        assert (Path(cfg.out_dir) / "metrics.json").exists(), command.id
        return None
    if script == "infer.py":
        from restoregan.inference.run import infer

        args = [a for a in args if not a.startswith("device=")] + ["device=cpu", "video.max_frames=4"]
        with torch.no_grad():
            written = infer(compose_conf("infer", args))
        assert written and all(Path(p).exists() for p in written), command.id
        return None
    if script == "export.py":
        from restoregan.exporting import export

        export(compose_conf("export", args))
        return None
    raise AssertionError(f"{command.id}: no runner for {script} (add one in tests/test_doc_commands.py)")


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_runs(command: Command, workspace: Workspace, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    environ = dict(os.environ)
    try:
        note = _run(command, workspace, tmp_path, monkeypatch)
    finally:  # what a run sets in the environment (Lightning: ranks, ports) must not reach the next test
        os.environ.clear()
        os.environ.update(environ)
    if note:
        print(f"{command.id}: {note}")


def test_commands_are_found() -> None:
    # the extractor itself: a doc without commands would make the test above pass vacuously
    scripts = {c.script for c in COMMANDS}
    assert {"train.py", "evaluate.py", "infer.py", "make"} <= scripts
    readme = [c for c in COMMANDS if c.doc == "README.md"]
    assert readme[0].argv == ("make", "demo") and readme[1].argv == ("make", "test")
