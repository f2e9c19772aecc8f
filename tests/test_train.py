"""Training end to end on tiny settings: stages, EMA, checkpoints/resume, export, config composition, DDP."""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from restoregan.gans.checkpoint import FORMAT_VERSION, load_generator
from restoregan.models import load_model
from restoregan.tasks.sr import SuperResolutionTask
from restoregan.training.run import train
from train_utils import ROOT, Crash, compose_train, tiny_overrides

# Super-resolution experiments (train.yaml's default task); the other tasks' experiments (`override /task: X`)
# have smoke tests beside their task's tests.
EXPERIMENTS = sorted(
    p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if "override /task:" not in p.read_text()
)


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_each_experiment_trains_a_few_steps(experiment: str, tmp_path: Path) -> None:
    # two blocks instead of 16-23: the composition, losses and schedule are under test, not the depth
    cfg = compose_train(tiny_overrides(tmp_path, experiment) + ["pretrain_iters=1", "gan_iters=1", "generator.num_block=2"])
    result = train(cfg)
    assert int(result.module.iteration) == 2
    assert result.last_checkpoint.exists()
    loaded = load_model(f"{result.export}.safetensors")
    assert loaded.scale == cfg.task.scale
    assert loaded.task.config() == result.module.task.config() == SuperResolutionTask(cfg.task.scale).config()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), result.module.net_g_eval.cpu()(x), atol=1e-5)


def test_discriminator_trains_only_in_gan_stage(tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(tmp_path / "pre") + ["gan_iters=0"])
    from restoregan.training.run import build_module

    result = train(cfg)
    pl.seed_everything(cfg.seed)
    d_init = _params(build_module(cfg).net_d)  # same seed as train() -> same D initialisation
    assert _same(d_init, _params(result.module.net_d)), "D must not change during pixel pretraining"

    cfg = compose_train(tiny_overrides(tmp_path / "gan"))
    result = train(cfg)
    assert not _same(d_init, _params(result.module.net_d)), "D must train in the GAN stage"
    metrics = (tmp_path / "gan" / "csv" / "metrics.csv").read_text()
    for key in ("train/g_pix", "train/g_adv", "train/d_real", "train/d_fake", "val/psnr", "val/psnr_bicubic"):
        assert key in metrics


def test_ema_differs_from_generator_and_is_exported(tmp_path: Path) -> None:
    result = train(compose_train(tiny_overrides(tmp_path)))
    module = result.module
    assert not _same(_params(module.net_g), _params(module.net_g_ema))
    exported = load_generator(f"{result.export}.safetensors").net
    assert _same(_params(exported), _params(module.net_g_ema))


def test_validation_grid_has_four_labelled_columns(tmp_path: Path) -> None:
    train(compose_train(tiny_overrides(tmp_path)))
    grids = sorted((tmp_path / "images").glob("val_iter*.png"))
    assert grids, "validation should write an image grid"
    width, height = Image.open(grids[-1]).size
    assert width == 4 * 32  # LR | bicubic | SR | HR at HR size (32x32 crops)


class _CaptureStart(pl.Callback):
    """State at the first batch of the resumed run, before any optimizer step."""

    captured = False

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.captured:
            return
        self.captured = True
        self.iteration = int(module.iteration)
        self.global_step = trainer.global_step
        self.net_g = _params(module.net_g)
        self.net_g_ema = _params(module.net_g_ema)
        self.net_d = _params(module.net_d)
        self.opt_states = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]  # Adam updates in place


def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import restoregan.training.run as run_mod

    overrides = tiny_overrides(tmp_path) + ["pretrain_iters=2", "gan_iters=4", "val_every=4"]
    extra: list[pl.Callback] = [Crash(at=5)]
    original = run_mod.extra_callbacks
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: original() + extra)
    with pytest.raises(RuntimeError, match="killed"):
        train(compose_train(overrides))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["iteration"].item() == 4  # checkpoint after the validation at iteration 4

    # A fresh start over it must be refused; resuming picks up exactly what was saved.
    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        train(compose_train(overrides))
    capture = _CaptureStart()
    extra[:] = [capture]
    result = train(compose_train(overrides + ["ckpt_path=last"]))

    assert capture.iteration == 4 and capture.global_step == ckpt["global_step"]
    state = ckpt["state_dict"]
    for prefix, params in (("net_g.", capture.net_g), ("net_g_ema.", capture.net_g_ema), ("net_d.", capture.net_d)):
        saved = [v for k, v in state.items() if k.startswith(prefix) and "running_" not in k and "num_batches" not in k]
        assert len(saved) == len(params) and _same(saved, params), prefix
    for restored, saved in zip(capture.opt_states, ckpt["optimizer_states"]):
        assert set(restored["state"]) == set(saved["state"])
        for idx, s in saved["state"].items():
            assert torch.equal(restored["state"][idx]["exp_avg"], s["exp_avg"])
    assert int(result.module.iteration) == 6


def test_resume_and_init_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(compose_train(tiny_overrides(tmp_path) + ["ckpt_path=last"]))
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        train(compose_train(tiny_overrides(tmp_path) + [f"ckpt_path={tmp_path}/nope.ckpt"]))


def test_init_from_checkpoint_of_another_architecture_fails_clearly(tmp_path: Path) -> None:
    result = train(compose_train(tiny_overrides(tmp_path / "a") + ["gan_iters=0"]))
    other = tiny_overrides(tmp_path / "b") + ["generator=rrdbnet_small", f"init_from={result.last_checkpoint}"]
    with pytest.raises(ValueError, match=str(result.last_checkpoint)):
        train(compose_train(other))


def test_any_generator_discriminator_pair_composes(tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(tmp_path) + ["generator=rrdbnet_small", "discriminator=unet_sn"])
    result = train(cfg)
    assert type(result.module.net_g).__name__ == "RRDBNet"
    assert type(result.module.net_d).__name__ == "UNetDiscriminatorSN"


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    cmd = [sys.executable, "train.py", *tiny_overrides(tmp_path), "trainer=ddp", "trainer.accelerator=cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "MEMBER: 2/2" in out  # Lightning's banner: two processes joined the group
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["iteration"].item() == 4


def test_last_checkpoint_holds_the_final_iteration(tmp_path: Path) -> None:
    # 3 iterations, validation (and its checkpoint) only at 2: last.ckpt must still hold iteration 3.
    result = train(compose_train(tiny_overrides(tmp_path) + ["gan_iters=1"]))
    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["iteration"].item() == 3
    assert ckpt["restoregan"]["task"] == {"_target_": "restoregan.tasks.sr.SuperResolutionTask", "scale": 4}
    assert ckpt["restoregan"]["scale"] == 4 and ckpt["restoregan"]["format_version"] == FORMAT_VERSION == 2
    assert load_model(result.last_checkpoint).task.config() == SuperResolutionTask(4).config()
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_discriminator_pretraining_keeps_the_generator_frozen(tmp_path: Path) -> None:
    """NoGAN phase 2: D learns against the phase-1 generator, which must not move."""
    g_only = train(compose_train(tiny_overrides(tmp_path / "g") + ["gan_iters=0"]))
    cfg = compose_train(tiny_overrides(tmp_path / "gd") + ["d_pretrain_iters=2", "gan_iters=0"])
    nogan = train(cfg)
    assert int(nogan.module.iteration) == 4
    assert _same(_params(g_only.module.net_g), _params(nogan.module.net_g)), "G must not train in phase 2"
    assert not _same(_params(g_only.module.net_d), _params(nogan.module.net_d)), "D must train in phase 2"
    with open(tmp_path / "gd" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {float(r["train/phase"]) for r in rows if r.get("train/phase")} == {1.0, 2.0}
    assert any(r.get("train/d_real") for r in rows)


def test_discriminator_pretraining_without_a_discriminator_is_refused(tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(tmp_path) + ["d_pretrain_iters=2", "~discriminator"])
    with pytest.raises(ValueError, match="d_pretrain_iters=2 needs a discriminator"):
        train(cfg)


class _BarSnapshot(pl.Callback):
    """What the progress bar shows after each batch."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = trainer.progress_bar_callback
        task = bar.progress.tasks[bar.train_progress_bar_id]
        self.shown.append((task.description.strip(), task.completed, task.total))


def test_progress_bar_counts_iterations_and_names_the_phase(tmp_path: Path, monkeypatch) -> None:
    import restoregan.training.run as run_mod

    snapshot = _BarSnapshot()
    monkeypatch.setattr(run_mod, "extra_callbacks", lambda: [snapshot])
    overrides = ["d_pretrain_iters=1", "gan_iters=2", "trainer.enable_progress_bar=true"]
    train(compose_train(tiny_overrides(tmp_path) + overrides))
    # callbacks run in list order and the bar is last: each snapshot shows the previous batch's update, which
    # names the phase of the batch to come
    assert snapshot.shown[1:] == [("pretrain G", 1, 5), ("pretrain D", 2, 5), ("GAN", 3, 5), ("GAN", 4, 5)]


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_outputs_never_replace_its_inputs(tmp_path: Path) -> None:
    """Checked before anything is written: init_from (and the other half of an export), a checkpoint of this run
    that is not its resume file, and data folders the run folder would sit in."""
    from restoregan.training.inputs import check_run_outputs

    run = tmp_path / "a"
    result = train(compose_train(tiny_overrides(run) + ["gan_iters=0"]))
    export, checkpoints = Path(f"{result.export}.safetensors"), run / "checkpoints"
    (tmp_path / "link.safetensors").symlink_to(export)
    before = _files(run)
    cases = [
        (f"init_from={export}", f"init_from={export}: this run would write {export}, replacing or removing this input"),
        (f"init_from={result.export}.yaml", f"init_from={result.export}.yaml: this run would write {export}"),
        (f"init_from={tmp_path}/link.safetensors", f"init_from={tmp_path}/link.safetensors: this run would write "
                                                   f"{export}"),
        (f"init_from={checkpoints}/last.ckpt", f"init_from={checkpoints}/last.ckpt: this run would write into "
                                               f"{checkpoints}/"),
        (f"ckpt_path={checkpoints}/iter0000002.ckpt", f"ckpt_path={checkpoints}/iter0000002.ckpt: this run would "
                                                      f"write into {checkpoints}/"),
    ]
    for override, expected in cases:
        with pytest.raises(ValueError) as info:
            train(compose_train(tiny_overrides(run) + ["gan_iters=0", "overwrite=true", override]))
        assert str(info.value).startswith(expected) and "\n" not in str(info.value), str(info.value)
    assert _files(run) == before, "a refused run writes nothing"
    # resuming this run's own checkpoint, named by its path, is what resuming is for
    check_run_outputs(compose_train(tiny_overrides(run) + [f"ckpt_path={checkpoints}/last.ckpt"]))

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (48, 48)).save(photos / "0.png")
    for run_dir in (photos, photos / "run"):
        with pytest.raises(ValueError, match=f"^data.train.source={photos}: this run would write {run_dir}/.*, "
                                             "replacing or mixing with this training data"):
            train(compose_train(tiny_overrides(run_dir) + ["data=hr_folder", f"data.train.source={photos}"]))
    assert [p.name for p in photos.iterdir()] == ["0.png"]
    pairs = ["data=paired", f"data.train.hr_dir={photos}", f"data.train.lr_dir={run}/images"]
    with pytest.raises(ValueError, match=f"^data.train.lr_dir={run}/images: this run would write into {run}/images/"):
        train(compose_train(tiny_overrides(run) + ["overwrite=true", *pairs]))


def test_validation_means_are_evaluate_means_over_finite_items(tmp_path: Path) -> None:
    """val/<key> is the mean of task.metrics over the set's finite items (what evaluate.py reports): an item whose
    input equals its target (PSNR inf) is left out of val/psnr_input, whichever batch it shares; a NaN output
    gives NaN (the health check's cue)."""
    from torch.utils.data import DataLoader

    from restoregan.losses.weighted import WeightedSum
    from restoregan.tasks.base import finite_mean
    from restoregan.tasks.image import ImageToImageTask
    from restoregan.training.gan_module import GANModule

    gen = torch.Generator().manual_seed(0)
    gts = torch.rand(4, 3, 16, 16, generator=gen)
    noise = torch.tensor([0.0, 0.02, 0.05, 0.1]).view(4, 1, 1, 1) * torch.randn(4, 3, 16, 16, generator=gen)
    items = [{"lq": (g + n).clamp(0, 1), "gt": g} for g, n in zip(gts, noise)]  # item 0: lq == gt
    net = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(0.9 * torch.eye(3).view(3, 3, 1, 1))
    task = ImageToImageTask()
    pix = WeightedSum({"pix": {"weight": 1.0, "fn": torch.nn.L1Loss()}})
    module = GANModule(net, None, task, pix, pix, None, 0.0, lambda p: torch.optim.SGD(p, lr=0.1), ema_decay=None,
                       grid_images=0)

    def validate() -> dict[str, float]:
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False, default_root_dir=tmp_path)
        return trainer.validate(module, dataloaders=DataLoader(items, batch_size=2), verbose=False)[0]

    logged = validate()
    with torch.no_grad():
        per_item = [task.metrics(net(it["lq"][None]).clamp(0, 1), {k: v[None] for k, v in it.items()}) for it in items]
    inputs = [task.metrics(it["lq"][None], {k: v[None] for k, v in it.items()}) for it in items]
    assert torch.isinf(inputs[0]["psnr"]).all()  # the case under test
    for key in ("psnr", "ssim"):
        model = finite_mean(torch.cat([s[key] for s in per_item]).tolist())
        baseline = finite_mean(torch.cat([s[key] for s in inputs]).tolist())
        assert logged[f"val/{key}"] == pytest.approx(model, abs=1e-5)
        assert logged[f"val/{key}_input"] == pytest.approx(baseline, abs=1e-5)
    # the finite mean of items 1-3, not a mean of batch means (item 1 would weigh double)
    assert logged["val/psnr_input"] == pytest.approx(float(torch.cat([s["psnr"] for s in inputs[1:]]).mean()), abs=1e-5)

    with torch.no_grad():
        net.weight.fill_(float("nan"))
    assert torch.isnan(torch.tensor(validate()["val/psnr"]))


def test_overwrite_starts_over_without_the_earlier_runs_checkpoints(tmp_path: Path) -> None:
    """overwrite=true: the earlier run's checkpoints are gone, so last.ckpt (what ckpt_path=last resumes) is this
    run's, not the earlier one's left beside last-v1.ckpt."""
    from restoregan.gans.checkpoint import torch_load_weights_only

    base = tiny_overrides(tmp_path) + ["gan_iters=0", "d_pretrain_iters=0"]
    train(compose_train(base + ["pretrain_iters=4", "val_every=4"]))
    checkpoints = tmp_path / "checkpoints"
    assert torch_load_weights_only(checkpoints / "last.ckpt")["global_step"] == 4
    train(compose_train(base + ["pretrain_iters=2", "val_every=2", "overwrite=true"]))
    assert sorted(p.name for p in checkpoints.glob("*.ckpt")) == ["iter0000002.ckpt", "last.ckpt"]
    assert torch_load_weights_only(checkpoints / "last.ckpt")["global_step"] == 2
