"""Image metrics against independent implementations (skimage, numpy) and the literature's conventions."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restoregan.metrics.image import psnr_y, rgb_to_y, ssim_y
from restoregan.pretrained import MissingWeightsError


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _smooth_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured image and a noisy copy, both quantised to 8 bits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:80] / 9.0
    base = np.stack([np.sin(xx + yy), np.cos(xx * 0.7), np.sin(yy * 1.3)], axis=-1) * 0.4 + 0.5
    noisy = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
    q = lambda a: (np.round(a * 255) / 255).astype(np.float32)  # noqa: E731
    return q(noisy), q(base)


def test_rgb_to_y_matches_skimage_and_matlab_range() -> None:
    img = _rand((17, 23, 3), 0)
    np.testing.assert_allclose(rgb_to_y(img), rgb2ycbcr(img)[..., 0], atol=1e-4)
    # torch path, batched and not, agrees with numpy
    t = torch.from_numpy(img).permute(2, 0, 1)
    np.testing.assert_allclose(rgb_to_y(t).numpy(), rgb_to_y(img), atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(t[None])[0].numpy(), rgb_to_y(img), atol=1e-9)
    # studio swing: black -> 16, white -> 235
    assert rgb_to_y(np.zeros((1, 1, 3))).item() == pytest.approx(16.0)
    assert rgb_to_y(np.ones((1, 1, 3))).item() == pytest.approx(235.0)


def test_psnr_matches_numpy_and_skimage() -> None:
    pred, target = _smooth_pair()
    crop = 4
    yp, yt = rgb_to_y(pred)[crop:-crop, crop:-crop], rgb_to_y(target)[crop:-crop, crop:-crop]
    by_hand = 10 * np.log10(255.0**2 / np.mean((yp - yt) ** 2))
    ours = psnr_y(pred, target, crop)
    assert isinstance(ours, float)
    assert ours == pytest.approx(by_hand, abs=1e-9)
    assert ours == pytest.approx(peak_signal_noise_ratio(yt, yp, data_range=255), abs=1e-9)
    assert psnr_y(target, target, crop) == float("inf")


def test_batched_tensor_equals_per_image() -> None:
    p1, t1 = _smooth_pair(1)
    p2, t2 = _smooth_pair(2)
    to_t = lambda *a: torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x in a])  # noqa: E731
    pb, tb = to_t(p1, p2), to_t(t1, t2)
    for fn in (psnr_y, ssim_y):
        batch = fn(pb, tb, 2)
        assert isinstance(batch, torch.Tensor) and batch.shape == (2,)
        assert batch[0].item() == pytest.approx(fn(p1, t1, 2), abs=1e-9)
        assert batch[1].item() == pytest.approx(fn(pb[1], tb[1], 2), abs=1e-9)  # (3,H,W) tensor -> float


def test_ssim_matches_skimage_synthetic() -> None:
    pred, target = _smooth_pair()
    crop = 3
    yp, yt = rgb_to_y(pred)[crop:-crop, crop:-crop], rgb_to_y(target)[crop:-crop, crop:-crop]
    ref = structural_similarity(
        yt, yp, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim_y(pred, target, crop) == pytest.approx(ref, abs=1e-6)
    assert ssim_y(target, target, crop) == pytest.approx(1.0)


@pytest.mark.data
def test_ssim_matches_skimage_on_set5(set5_x4: Path) -> None:
    """Real images: HR vs Pillow-bicubic upscaled LR. skimage, like ssim.m, averages only windows that fit."""
    for name in ("img_001.png", "img_003.png"):
        hr = Image.open(set5_x4 / "HR" / name).convert("RGB")
        lr = Image.open(set5_x4 / "LR" / name).convert("RGB")
        sr = np.asarray(lr.resize(hr.size, Image.BICUBIC), dtype=np.float32) / 255
        gt = np.asarray(hr, dtype=np.float32) / 255
        ys, yh = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(gt)[4:-4, 4:-4]
        ref = structural_similarity(
            yh, ys, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert ssim_y(sr, gt, 4) == pytest.approx(ref, abs=1e-3)
        assert 0.5 < ref < 0.95


def test_border_crop_matters() -> None:
    """An error confined to the border is invisible with crop_border covering it, and only then."""
    target = _rand((40, 40, 3), 3)
    pred = target.copy()
    pred[:6] = 1 - pred[:6]
    assert psnr_y(pred, target, 6) == float("inf")
    assert psnr_y(pred, target, 0) < 30
    assert ssim_y(pred, target, 6) == pytest.approx(1.0)
    assert ssim_y(pred, target, 0) < 0.95


def test_shape_mismatch_and_overcrop_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr_y(_rand((8, 8, 3), 0), _rand((8, 9, 3), 0), 0)
    with pytest.raises(ValueError, match="crop_border"):
        psnr_y(_rand((8, 8, 3), 0), _rand((8, 8, 3), 1), 4)


def test_lpips_offline_raises_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restoregan.metrics.lpips import LPIPS

    # Empty cache and no network, whatever machine runs this.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingWeightsError) as info:
        LPIPS(net="alex")
    message = str(info.value)
    assert "TORCH_HOME" in message and "alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path) in message and "\n" not in message


def test_lpips_random_backbone_is_a_distance() -> None:
    """`pretrained=False` is the explicit opt-in for tests; the value is meaningless, the plumbing is not."""
    from restoregan.metrics.lpips import LPIPS

    metric = LPIPS(net="alex", pretrained=False)
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    y = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(metric(x, x), torch.zeros(2))
    d = metric(x, y)
    assert d.shape == (2,) and bool((d > 0).all())


def test_lpips_loads_cached_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backbone checkpoint in the hub cache is what LPIPS uses (squeeze: the 5 MB one; random values, published
    under a name carrying their own sha256 prefix, as torchvision's files carry theirs)."""
    import hashlib

    import torchvision

    from restoregan.metrics import lpips as lpips_module
    from restoregan.metrics.lpips import LPIPS

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    state = torchvision.models.squeezenet1_1().state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, tmp_path / "random.pth")
    name = f"squeezenet1_1-{hashlib.sha256((tmp_path / 'random.pth').read_bytes()).hexdigest()[:8]}.pth"
    (tmp_path / "random.pth").rename(cache / name)
    monkeypatch.setitem(lpips_module.BACKBONE_URLS, "squeeze", f"https://example.invalid/{name}")
    metric = LPIPS(net="squeeze")
    trunk = metric.model.net.state_dict()
    assert torch.equal(trunk["slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(trunk["slice7.12.expand3x3.weight"], state["features.12.expand3x3.weight"])
