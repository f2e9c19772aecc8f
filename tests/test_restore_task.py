"""The film-restoration task on its own: which model files it serves (a 1x community denoiser, a format-1 export),
what evaluate.py scores (seeded damage, grey references, the copies save_inputs writes) and its one-line refusals."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from cli_utils import photo_folder
from restoregan.data.film_damage import FilmDamage
from restoregan.data.film_dataset import damaged_pair
from restoregan.data.io import read_image
from restoregan.gans.checkpoint import CheckpointError, save_export
from restoregan.gans.restore_unet import RestoreUNet
from restoregan.gans.rrdbnet import RRDBNet
from restoregan.models import load_model
from restoregan.tasks.base import Item, RunOptions
from restoregan.tasks.restore import RestorationTask

ARCH = {"_target_": "restoregan.gans.restore_unet.RestoreUNet", "num_feat": 8, "num_levels": 2, "num_conv": 1}


def _dncnn(path: Path, channels: int) -> Path:
    """A tiny DnCNN (spandrel: purpose "Restoration", 1x) as a plain state dict, the way such models are shared."""
    from spandrel.architectures.DnCNN import DnCNN

    torch.manual_seed(0)
    torch.save(DnCNN(in_nc=channels, out_nc=channels, nc=8, nb=8, act_mode="R").state_dict(), path)
    return path


def test_a_1x_community_denoiser_is_a_colour_restoration_model_and_runs_as_a_stage(tmp_path: Path) -> None:
    model = load_model(_dncnn(tmp_path / "dncnn.pth", 3))
    assert isinstance(model.task, RestorationTask) and model.scale == 1
    assert model.task.config() == {"_target_": "restoregan.tasks.restore.RestorationTask", "grey": False}
    # the restore stage of a film pipeline: frame by frame, timestamps kept, the network's own output
    frames = [np.random.default_rng(i).random((20, 24, 3)).astype(np.float32) for i in range(3)]
    stage = model.task.stage("restore", model, RunOptions(batch=2))
    out = list(stage(iter(Item(i, 100 * i, Fraction(1, 1000), f) for i, f in enumerate(frames))))
    assert [(o.index, o.pts) for o in out] == [(0, 0), (1, 100), (2, 200)]
    with torch.no_grad():
        expected = model.net(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)).clamp(0, 1)
    assert np.allclose(np.stack([o.image for o in out]), expected.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    # a 1x ESRGAN-family state dict is a restoration model as well
    torch.save(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=1).state_dict(), tmp_path / "esrgan_1x.pth")
    assert isinstance(load_model(tmp_path / "esrgan_1x.pth").task, RestorationTask)


def test_a_grey_1_channel_denoiser_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _dncnn(tmp_path / "grey.pth", 1)
    with pytest.raises(CheckpointError, match=rf"^{path}: a Restoration model \(x1\), which no task here runs$"):
        load_model(path)


def test_a_format_1_restore_export_keeps_its_grey(tmp_path: Path) -> None:
    net = RestoreUNet(**{k: v for k, v in ARCH.items() if k != "_target_"})
    export = save_export(tmp_path / "g", net, ARCH, {"task": RestorationTask().config(), "scale": 1})
    described = yaml.safe_load(export.with_suffix(".yaml").read_text())
    for grey in (False, True):  # the old layout: `task: restore`, its setting beside it
        old = {**described, "task": "restore", "grey": grey, "format_version": 1}
        export.with_suffix(".yaml").write_text(yaml.safe_dump(old))
        task = load_model(export.with_suffix(".yaml")).task
        assert isinstance(task, RestorationTask) and task.grey is grey and task.conditional is True
    export.with_suffix(".yaml").write_text(yaml.safe_dump({**described, "task": "restore", "grey": "yes",
                                                           "format_version": 1}))
    with pytest.raises(CheckpointError, match=r"g\.yaml: .*task\.grey: 'yes' is not true or false"):
        load_model(export.with_suffix(".yaml"))


def test_a_network_of_other_channels_is_refused(tmp_path: Path) -> None:
    arch = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_in_ch": 1, "num_feat": 8, "num_block": 1,
            "num_grow_ch": 4, "scale": 1}
    net = RRDBNet(**{k: v for k, v in arch.items() if k != "_target_"})
    export = save_export(tmp_path / "g", net, arch, {"task": RestorationTask().config(), "scale": 1})
    with pytest.raises(CheckpointError, match=r"g\.yaml: generator\.num_in_ch: 1, but task restore needs 3"):
        load_model(export)


def _cfg(**kwargs) -> OmegaConf:
    return OmegaConf.create({"lpips": False, "dataset": None, "ckpt": None, **kwargs})


def test_eval_data_is_the_seeded_film_damage_of_grey_or_colour_references(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "clean")
    data = RestorationTask(seed=3).eval_data(_cfg(hr_dir=str(photos), out_dir=str(tmp_path / "e")))
    items = list(data.items)
    assert [it["name"] for it in items] == ["photo0.png", "photo1.png"]
    for i, it in enumerate(items):
        rng = np.random.default_rng([3, i])
        damaged, clean = damaged_pair(read_image(photos / it["name"]), rng, FilmDamage(), True)
        assert torch.equal(it["lq"][0].permute(1, 2, 0), torch.from_numpy(damaged))
        assert torch.equal(it["gt"][0].permute(1, 2, 0), torch.from_numpy(clean))
        assert torch.equal(it["gt"][0, 0], it["gt"][0, 1]) and torch.equal(it["gt"][0, 1], it["gt"][0, 2])  # grey
    assert data.header == {"dataset": "clean", "hr_dir": str(photos), "task": "restore", "grey": True, "seed": 3,
                           "metric_note": "PSNR/SSIM on RGB of 8-bit images, no border crop; LPIPS on RGB"}
    assert data.title(data.header, 2) == "clean: film restoration (2 grey images, damage seed 3)"
    assert not (tmp_path / "e").exists()  # nothing written without save_inputs
    colour = next(iter(RestorationTask(grey=False, seed=3).eval_data(_cfg(hr_dir=str(photos))).items))
    assert not torch.equal(colour["gt"][0, 0], colour["gt"][0, 2])
    # an override of the damage changes what is scored; the rest stays the class defaults
    task = RestorationTask(seed=3, damage={"sepia_prob": 1.0})
    assert task.film_damage().sepia_prob == 1.0 and task.film_damage().grain_range == FilmDamage().grain_range
    tinted = next(iter(task.eval_data(_cfg(hr_dir=str(photos))).items))
    assert not torch.equal(tinted["lq"][0, 0], tinted["lq"][0, 2])  # sepia-tinted input
    assert torch.equal(tinted["gt"][0, 0], tinted["gt"][0, 2])  # grey reference


def test_save_inputs_writes_the_scored_images_and_never_among_the_clean_ones(tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "clean")
    task = RestorationTask(save_inputs=True)
    items = list(task.eval_data(_cfg(hr_dir=str(photos), out_dir=str(tmp_path / "e"))).items)
    for it in items:
        stem = Path(it["name"]).stem
        for sub, key in (("damaged", "lq"), ("clean", "gt")):
            assert np.array_equal(read_image(tmp_path / "e" / sub / f"{stem}.png"), it[key][0].permute(1, 2, 0).numpy())
    before = sorted(p.name for p in photos.rglob("*"))
    copy = photos / "damaged" / "photo0.png"
    with pytest.raises(ValueError, match=rf"^{copy}: output would be written into the input folder"):
        task.eval_data(_cfg(hr_dir=str(photos), out_dir=str(photos)))
    assert sorted(p.name for p in photos.rglob("*")) == before


def test_bad_options_are_refused_in_one_line_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^task\.grey: 'yes' is not true or false$"):
        RestorationTask(grey="yes")
    with pytest.raises(ValueError, match=r"^task\.seed: -1 is not a whole number >= 0$"):
        RestorationTask(seed=-1)
    with pytest.raises(ValueError, match=r"^task\.damage\.grain_rnage: not a FilmDamage parameter \(one of grain_"):
        RestorationTask(damage={"grain_rnage": [1, 2]})
    with pytest.raises(ValueError, match=r"^task\.damage\.grain_range: range \[5\.0, 1\.0\] is reversed$"):
        RestorationTask(damage=OmegaConf.create({"grain_range": [5, 1]}))
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'absent'}: folder of clean images not found$"):
        RestorationTask().eval_data(_cfg(hr_dir=str(tmp_path / "absent")))
    with pytest.raises(ValueError, match=r"^hr_dir=\.\.\. is required for film restoration"):
        RestorationTask().eval_data(_cfg(hr_dir=None))


def test_skimage_val_is_a_source_of_clean_images() -> None:
    data = RestorationTask().eval_data(_cfg(hr_dir="skimage:val"))
    assert data.header["dataset"] == "skimage:val" and data.header["hr_dir"] == "skimage:val"
    assert [Path(p).name for p in data.sources] == ["chelsea.png", "coffee.png"]
