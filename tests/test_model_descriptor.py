"""A loaded model says what it is (restoregan.models.load_model): task, scale, channels and size requirements, for
our exports (format 2 and the older format 1), our Lightning checkpoints, ESRGAN-family .pth files and models only
spandrel knows; the task a file names is rebuilt under the same allow-list as its generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.gans.rrdbnet import RRDBNet
from restoregan.gans.srresnet import SRResNet
from restoregan.models import Model, load_model
from restoregan.tasks.restore import RestorationTask
from restoregan.tasks.sr import SuperResolutionTask

SRRESNET = {"_target_": "restoregan.gans.srresnet.SRResNet", "num_feat": 8, "num_block": 1, "scale": 2}


def perturb(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def sr_export(folder: Path, scale: int = 2) -> Path:
    net = perturb(SRResNet(num_feat=8, num_block=1, scale=scale))
    return save_export(folder / f"sr_x{scale}", net, {**SRRESNET, "scale": scale},
                       {"task": SuperResolutionTask(scale).config(), "scale": scale, "name": "tiny"})


def test_export_describes_its_task_and_sizes(tmp_path: Path) -> None:
    model = load_model(sr_export(tmp_path))
    assert isinstance(model, Model) and isinstance(model.task, SuperResolutionTask)
    assert (model.task.scale, model.scale, model.in_channels, model.out_channels) == (2, 2, 3, 3)
    assert model.pad_multiple == 1 and model.meta["name"] == "tiny" and not model.net.training
    # the pixel-unshuffling x1 RRDBNet needs sides divisible by 4; the descriptor says so, tiling reads it
    net = perturb(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=1))
    arch = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 1}
    weights = save_export(tmp_path / "denoise", net, arch, {"task": RestorationTask(grey=False).config(), "scale": 1})
    model = load_model(weights)
    assert isinstance(model.task, RestorationTask) and model.task.grey is False and model.pad_multiple == 4


def test_format_1_export_still_loads_with_its_task(tmp_path: Path) -> None:
    """Exports written before tasks were configs named them by a word (`task: sr`), settings beside it."""
    weights = sr_export(tmp_path, scale=2)
    description = yaml.safe_load(weights.with_suffix(".yaml").read_text())
    description.update({"task": "sr", "format_version": 1})
    weights.with_suffix(".yaml").write_text(yaml.safe_dump(description))
    model = load_model(weights.with_suffix(".yaml"))
    assert isinstance(model.task, SuperResolutionTask) and model.task.scale == 2
    description["task"] = "deblur"  # no task of this version answers to it
    weights.with_suffix(".yaml").write_text(yaml.safe_dump(description))
    with pytest.raises(CheckpointError, match="task: deblur is no task this version knows"):
        load_model(weights.with_suffix(".yaml"))


@pytest.mark.parametrize(("scale", "task_type"), [(4, SuperResolutionTask), (1, RestorationTask)])
def test_community_esrgan_gets_the_task_of_its_scale(tmp_path: Path, scale: int, task_type: type) -> None:
    """An ESRGAN-family .pth carries no task of ours: x4 is super-resolution, x1 (a denoiser, a dejpeg model) is
    restoration, so it can fill the film pipeline's restore stage."""
    net = perturb(RRDBNet(num_feat=8, num_block=1, num_grow_ch=32, scale=scale))
    path = tmp_path / f"community_x{scale}.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    model = load_model(path)
    assert isinstance(model.task, task_type) and model.scale == scale and model.task.scale == scale
    assert (model.in_channels, model.out_channels) == (3, 3)


def test_spandrel_only_denoiser_is_a_restoration_model(tmp_path: Path) -> None:
    """DnCNN (a 1x colour denoiser) is known only to spandrel, whose purpose "Restoration" picks our task."""
    from spandrel.architectures.DnCNN import DnCNN

    net = perturb(DnCNN(in_nc=3, out_nc=3, nc=8, nb=17))
    path = tmp_path / "dncnn.pth"
    torch.save(net.state_dict(), path)
    model = load_model(path)
    assert isinstance(model.task, RestorationTask) and model.task.grey is False and model.scale == 1
    assert model.arch is None and "DnCNN" in model.source
    x = torch.rand(1, 3, 20, 24)
    from restoregan.tasks.base import RunOptions

    out = model.task.apply_batch(model, x, RunOptions())
    with torch.no_grad():
        assert torch.allclose(out, net(x).clamp(0, 1), atol=1e-5)


def test_task_that_does_not_fit_the_network_is_refused(tmp_path: Path) -> None:
    weights = sr_export(tmp_path, scale=2)
    yaml_path = weights.with_suffix(".yaml")
    description = yaml.safe_load(yaml_path.read_text())
    description["task"] = SuperResolutionTask(4).config()  # an x2 network described as x4
    description.pop("scale")
    yaml_path.write_text(yaml.safe_dump(description))
    with pytest.raises(CheckpointError, match="its task is x4 but its network scales x2") as info:
        load_model(yaml_path)
    assert str(info.value).startswith(str(yaml_path))
    description["task"] = {"_target_": "restoregan.tasks.nope.Task"}
    yaml_path.write_text(yaml.safe_dump(description))
    with pytest.raises(CheckpointError, match="unknown task restoregan.tasks.nope.Task"):
        load_model(yaml_path)
    description["task"] = {"_target_": "restoregan.tasks.base.RunOptions"}  # a class of the contract, no task
    yaml_path.write_text(yaml.safe_dump(description))
    with pytest.raises(CheckpointError, match="not allowed"):
        load_model(yaml_path)


def test_options_lay_over_the_stored_task(tmp_path: Path) -> None:
    """infer.py's, evaluate.py's and the pipeline's settings (trusted config) apply where they say something; what
    the file says about the trained model stands unless the task lets an option change it."""
    weights = sr_export(tmp_path, scale=2)
    assert load_model(weights, options={"scale": None}).task.scale == 2
    # conf/task/sr.yaml's default (4) says nothing: `task=sr` alone keeps an x2 model x2
    assert load_model(weights, options={"scale": 4}).task.scale == 2
    with pytest.raises(CheckpointError, match="task.scale=3: the model file says 2; that is the model's own") as info:
        load_model(weights, options={"scale": 3})
    assert str(info.value).startswith(str(weights))  # the option is the user's: the file given is named
    with pytest.raises(CheckpointError, match=r"task.no_such_option: not an option of its task restoregan.tasks.sr.SuperResolutionTask \(its options: scale\)"):
        load_model(weights, options={"no_such_option": 1})
    # a restoration model: `grey` may be chosen for the report (overridable), the damage seed is an option
    net = perturb(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=1))
    arch = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 1}
    colour = save_export(tmp_path / "colour", net, arch, {"task": RestorationTask(grey=False).config(), "scale": 1})
    assert load_model(colour).task.grey is False
    assert load_model(colour, options={"grey": None, "seed": 0}).task.grey is False  # the yaml's defaults
    task = load_model(colour, options={"grey": True, "seed": 5}).task
    assert task.grey is True and task.seed == 5


def test_a_file_holds_only_what_describes_the_model(tmp_path: Path) -> None:
    """Application options (a damage seed, an output switch) are the user's to set, never a file's; the shared
    base ImageToImageTask is no task a file may name."""
    net = perturb(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=1))
    arch = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 1}
    config = {**RestorationTask().config(), "save_inputs": True}
    weights = save_export(tmp_path / "m", net, arch, {"task": config, "scale": 1})
    with pytest.raises(CheckpointError, match="task.save_inputs: not something a model file says") as info:
        load_model(weights)
    assert str(info.value).startswith(str(weights.with_suffix(".yaml")))
    weights = save_export(tmp_path / "b", net, arch,
                          {"task": {"_target_": "restoregan.tasks.image.ImageToImageTask"}, "scale": 1})
    with pytest.raises(CheckpointError, match="ImageToImageTask is not allowed; it is no task class"):
        load_model(weights)


def test_receptive_radius_is_measured_on_the_network() -> None:
    """Against the textbook count: k stacked 3x3 convolutions see k pixels each side, dilation 2 doubles it, a
    global operation (the frame's mean) has no finite field."""
    from torch import nn

    from restoregan.gans.sizes import receptive_radius

    stack = nn.Sequential(*(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in range(5)), nn.Conv2d(4, 3, 1))
    assert receptive_radius(perturb(stack)) == 5
    dilated = nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 3, 3, padding=2, dilation=2))
    assert receptive_radius(perturb(dilated)) == 4

    class Global(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.mean(dim=(2, 3), keepdim=True)

    assert receptive_radius(Global()) is None


def test_tiling_note_when_the_overlap_is_narrower_than_the_field(tmp_path: Path) -> None:
    from restoregan.models import tiling_note

    model = load_model(sr_export(tmp_path, scale=2))  # SRResNet, 1 block: 5 LR convs, then HR convs
    radius = model.receptive_radius
    assert radius is not None and 4 <= radius <= 8
    assert tiling_note(model, tile=None, overlap=0, largest_side=500) is None  # one pass
    assert tiling_note(model, tile=64, overlap=0, largest_side=64) is None  # fits one tile
    assert tiling_note(model, tile=64, overlap=radius, largest_side=65) is None
    note = tiling_note(model, tile=64, overlap=radius - 1, largest_side=65)
    assert note.startswith(f"note: {model.path}: its receptive field ({radius} pixels") and "\n" not in note
