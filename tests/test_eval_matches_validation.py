"""Validation's val/psnr and val/ssim are evaluate.py's means for the same model on the same images: both come
from `task.metrics` (issue 13). A tiny SR generator is validated by GANModule under Lightning on a folder of
whole images, exported, and scored by evaluate.py on that folder: LR made from HR (validation's
BicubicDegradation, evaluate.py's MATLAB-style bicubic, both rounded to 8 bits) and read from an LR folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cli_utils import compose_conf
from restoregan.data.datasets import HRImageDataset, PairedImageDataset
from restoregan.data.imresize import imresize
from restoregan.data.io import quantize, read_image
from restoregan.data.pipelines import BicubicDegradation
from restoregan.evaluation.run import evaluate
from restoregan.gans.checkpoint import save_export
from restoregan.gans.rrdbnet import RRDBNet
from restoregan.tasks.sr import SuperResolutionTask
from restoregan.training.gan_module import GANModule

SCALE = 2
ARCH = {"_target_": "restoregan.gans.rrdbnet.RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": SCALE,
        "num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def validate(module: GANModule, dataset, tmp: Path) -> dict[str, float]:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, default_root_dir=tmp)
    (results,) = trainer.validate(module, DataLoader(dataset, batch_size=1), verbose=False)
    return results


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[GANModule, Path, Path, Path]:
    """(module, export, HR folder, LR folder): three colour images of different sizes, not multiples of the scale."""
    root = tmp_path_factory.mktemp("val_eval")
    hr, lr = root / "HR", root / "LR"
    hr.mkdir()
    lr.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(32, 32), (35, 41), (40, 28)]):
        small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
        img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(hr / f"img{i}.png")
        clean = read_image(hr / f"img{i}.png")[: h - h % SCALE, : w - w % SCALE]
        low = quantize(imresize(clean, scale=1 / SCALE))
        Image.fromarray(np.round(low * 255).astype(np.uint8)).save(lr / f"img{i}.png")
    torch.manual_seed(0)
    net = RRDBNet(**{k: v for k, v in ARCH.items() if k != "_target_"})
    module = GANModule(net, None, SuperResolutionTask(SCALE), None, None, None, 0.0, torch.optim.Adam,
                       ema_decay=None, grid_dir=str(root / "grids"), generator_config=ARCH)
    task = SuperResolutionTask(SCALE)
    export = save_export(root / "export" / "generator", net, ARCH, {"task": task.config(), "scale": SCALE})
    return module, export, hr, lr


@pytest.mark.parametrize("lr_from", ["hr", "lr_dir"])
def test_validation_psnr_ssim_equal_evaluate_means(setup, tmp_path: Path, lr_from: str) -> None:
    module, export, hr, lr = setup
    if lr_from == "hr":
        dataset = HRImageDataset(str(hr), BicubicDegradation(SCALE), scale=SCALE, crop_size=None, train=False)
    else:
        dataset = PairedImageDataset(lr, hr, scale=SCALE, crop_size=None, train=False)
    val = validate(module, dataset, tmp_path)
    args = [f"ckpt={export}", f"hr_dir={hr}", f"out_dir={tmp_path / 'report'}", "lpips=false", "device=cpu"]
    report = evaluate(compose_conf("evaluate", args + ([f"lr_dir={lr}"] if lr_from == "lr_dir" else [])))
    ours, bicubic = report["methods"]["generator"], report["methods"]["bicubic"]
    assert len(ours["images"]) == 3
    for key in ("psnr", "ssim"):
        assert val[f"val/{key}"] == pytest.approx(ours[key], abs=1e-9, rel=0)
        assert val[f"val/{key}_bicubic"] == pytest.approx(bicubic[key], abs=1e-9, rel=0)
    assert ours["psnr"] != pytest.approx(bicubic["psnr"], abs=1e-3)  # two different methods, not one number twice
