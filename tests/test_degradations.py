"""Real-ESRGAN degradations: each pure function on its own, then the composed pipelines."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from restoregan.data import degradations as D
from restoregan.data.pipelines import BicubicDegradation, RealESRGANDegradation
from skimage import data


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return (data.astronaut()[:256, 128:384] / 255.0).astype(np.float32)  # a real, mostly smooth crop


def grey(h: int = 64, w: int = 64, value: float = 0.5) -> np.ndarray:
    return np.full((h, w, 3), value, np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def laplacian_energy(img: np.ndarray) -> float:
    return float(np.mean(cv2.Laplacian(img, cv2.CV_32F) ** 2))


def moments_along(kernel: np.ndarray, theta: float) -> tuple[float, float]:
    """Second moments of the kernel along direction theta (x = columns, y = rows) and across it."""
    r = kernel.shape[0] // 2
    xx, yy = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    u = math.cos(theta) * xx + math.sin(theta) * yy
    v = -math.sin(theta) * xx + math.cos(theta) * yy
    return float((kernel * u**2).sum()), float((kernel * v**2).sum())


# ----------------------------------------------------------------------------------------------- kernels

KERNELS = {
    "iso": lambda: D.isotropic_gaussian_kernel(15, 2.0),
    "aniso": lambda: D.anisotropic_gaussian_kernel(21, 3.0, 1.0, 0.7),
    "generalized": lambda: D.generalized_gaussian_kernel(13, 2.0, 1.2, -1.0, 0.6),
    "plateau": lambda: D.plateau_kernel(17, 1.5, 2.5, 2.0, 1.7),
    "sinc": lambda: D.sinc_kernel(21, math.pi / 4),
}


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_sums_to_one_and_is_odd(name: str) -> None:
    k = KERNELS[name]()
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(k).all()


def test_random_blur_kernels_sum_to_one_with_odd_sizes_in_range() -> None:
    for seed in range(40):
        sinc_prob = 1.0 if seed % 4 == 0 else 0.1
        k = D.random_blur_kernel(np.random.default_rng(seed), size_range=(7, 21), sinc_prob=sinc_prob)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 21
        assert k.sum() == pytest.approx(1.0, abs=1e-9)


def test_even_kernel_size_rejected() -> None:
    with pytest.raises(ValueError, match="odd"):
        D.isotropic_gaussian_kernel(8, 1.0)


def test_isotropic_kernel_is_symmetric() -> None:
    k = D.isotropic_gaussian_kernel(21, 2.3)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    np.testing.assert_allclose(k, k[:, ::-1], atol=1e-15)
    assert k.argmax() == k.size // 2  # peak at the centre


@pytest.mark.parametrize("theta", [0.0, 0.6, math.pi / 2, -2.2])
def test_anisotropic_kernel_elongated_along_theta(theta: float) -> None:
    k = D.anisotropic_gaussian_kernel(41, 4.0, 1.5, theta)  # large enough that truncation is negligible
    along, across = moments_along(k, theta)
    assert along == pytest.approx(4.0**2, rel=0.02)
    assert across == pytest.approx(1.5**2, rel=0.02)
    # and not elongated along the perpendicular direction
    along_perp, _ = moments_along(k, theta + math.pi / 2)
    assert along_perp == pytest.approx(across, rel=1e-6)


def test_generalized_gaussian_shape_parameter() -> None:
    # the paper's convention: exp(-0.5 (C^T Sigma^-1 C)^beta), so beta = 1 is exactly the Gaussian
    gauss = D.anisotropic_gaussian_kernel(21, 2.5, 1.2, 0.4)
    np.testing.assert_allclose(D.generalized_gaussian_kernel(21, 2.5, 1.2, 0.4, 1.0), gauss, atol=1e-12)
    # relative to its centre, beta > 1 is flatter near the centre and lighter in the tails; beta < 1 the reverse
    def profile(beta: float) -> tuple[float, float]:
        k = D.generalized_gaussian_kernel(21, 2.5, 1.2, 0.0, beta)  # theta 0: sigma_x lies along the row
        return k[10, 11] / k[10, 10], k[10, 16] / k[10, 10]  # 1 px (q = 0.16) and 6 px (q = 5.8) out

    (near_g, far_g), (near_flat, far_flat), (near_peak, far_peak) = profile(1.0), profile(3.0), profile(0.5)
    assert near_peak < near_g < near_flat
    assert far_flat < far_g < far_peak


def test_plateau_kernel_isotropic_is_symmetric_with_flat_top() -> None:
    k = D.plateau_kernel(21, 2.0, 2.0, 0.0, 2.0)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    centre = k[10, 10]
    assert k[10, 11] > 0.9 * centre  # flat near the centre ...
    assert k[10, 0] < 0.01 * centre  # ... and falls off away from it


@pytest.mark.parametrize("cutoff", [math.pi / 2, math.pi / 3])
def test_sinc_kernel_is_circular_lowpass(cutoff: float) -> None:
    k = D.sinc_kernel(21, cutoff)
    n = 256
    response = np.abs(np.fft.fft2(k, s=(n, n)))
    f = np.fft.fftfreq(n) * 2 * math.pi  # radians / pixel
    radius = np.hypot(*np.meshgrid(f, f))
    passband = response[radius < 0.6 * cutoff]
    stopband = response[radius > 1.5 * cutoff]
    # truncation to 21 taps leaves some ripple (that is the ringing Real-ESRGAN wants), hence the tolerance
    assert passband.min() > 0.8 and passband.max() < 1.2
    assert stopband.max() < 0.15 and stopband.mean() < 0.02


# -------------------------------------------------------------------------------------------- operations


def test_filter2d_with_delta_kernel_is_identity(astronaut: np.ndarray) -> None:
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    out = D.filter2d(astronaut, delta)
    assert out.dtype == np.float32 and out.shape == astronaut.shape
    np.testing.assert_allclose(out, astronaut, atol=1e-6)


def test_filter2d_preserves_mean_of_flat_image() -> None:
    out = D.filter2d(grey(32, 40, 0.3), D.isotropic_gaussian_kernel(21, 3.0))  # a normalised kernel keeps flat areas flat
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_random_resize_sizes() -> None:
    img = grey(40, 60)
    kept = D.random_resize(img, np.random.default_rng(0), probabilities=(0, 0, 1))
    assert kept.shape == img.shape
    down = D.random_resize(img, np.random.default_rng(0), scale_range=(0.5, 2), probabilities=(0, 1, 0))
    assert down.shape[0] <= 40 and down.shape[1] <= 60 and down.shape[0] >= 20
    up = D.random_resize(img, np.random.default_rng(0), scale_range=(0.5, 2), probabilities=(1, 0, 0))
    assert up.shape[0] >= 40 and up.shape[1] >= 60
    based = D.random_resize(img, np.random.default_rng(0), probabilities=(0, 0, 1), base_size=(10, 15))
    assert based.shape == (10, 15, 3)


def test_gaussian_noise_std_matches_sigma() -> None:
    img = grey(128, 128)  # mid-grey: 3 sigma stays far from the clip bounds
    out = D.gaussian_noise(img, np.random.default_rng(0), sigma=10.0, grey=False)
    assert out.dtype == np.float32
    residual = out - img
    assert residual.std() == pytest.approx(10 / 255, rel=0.05)
    assert abs(residual.mean()) < 0.002
    assert not np.allclose(residual[..., 0], residual[..., 1])  # colour noise: channels independent


def test_grey_gaussian_noise_identical_across_channels() -> None:
    img = grey(64, 64)
    residual = D.gaussian_noise(img, np.random.default_rng(1), sigma=15.0, grey=True) - img
    assert residual.std() > 0.03
    np.testing.assert_array_equal(residual[..., 0], residual[..., 1])
    np.testing.assert_array_equal(residual[..., 0], residual[..., 2])


@pytest.mark.parametrize("is_grey", [False, True])
def test_poisson_noise_variance_grows_with_intensity(is_grey: bool) -> None:
    ramp = np.linspace(0, 1, 256, dtype=np.float32)
    img = np.repeat(np.tile(ramp, (256, 1))[..., None], 3, axis=2)  # intensity grows along columns
    residual = D.poisson_noise(img, np.random.default_rng(0), scale=1.0, grey=is_grey) - img
    dark = residual[:, 25:51].var()  # intensities 0.1-0.2
    bright = residual[:, 179:205].var()  # intensities 0.7-0.8, below the clip at 1
    assert bright > 2.5 * dark > 0
    if is_grey:
        np.testing.assert_array_equal(residual[..., 0], residual[..., 2])


def test_jpeg_is_lossy_but_faithful(astronaut: np.ndarray) -> None:
    q30, q95 = D.jpeg(astronaut, 30), D.jpeg(astronaut, 95)
    for out in (q30, q95):
        assert out.dtype == np.float32 and out.shape == astronaut.shape
        assert not np.allclose(out, astronaut, atol=1e-3)
        assert psnr(out, astronaut) > 25
    assert psnr(q95, astronaut) > psnr(q30, astronaut) + 3


def test_jpeg_keeps_rgb_channel_order() -> None:
    red = np.zeros((32, 32, 3), np.float32)
    red[..., 0] = 1.0
    out = D.jpeg(red, 90)
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1


RANDOM_FUNCTIONS = {
    "blur_kernel": lambda img, rng: D.random_blur_kernel(rng),
    "resize": lambda img, rng: D.random_resize(img, rng),
    "noise": lambda img, rng: D.random_noise(img, rng),
    "jpeg": lambda img, rng: D.random_jpeg(img, rng),
    "realesrgan": lambda img, rng: RealESRGANDegradation(scale=4)(img, rng),
}


@pytest.mark.parametrize("name", RANDOM_FUNCTIONS)
def test_random_functions_deterministic_per_seed(name: str, astronaut: np.ndarray) -> None:
    fn, img = RANDOM_FUNCTIONS[name], astronaut[:64, :64]
    a, b = fn(img, np.random.default_rng(7)), fn(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    others = [fn(img, np.random.default_rng(seed)) for seed in range(3)]
    # a different seed gives a different result (shape or values) for at least one of a few seeds
    assert any(o.shape != a.shape or not np.array_equal(o, a) for o in others)


def test_random_functions_do_not_modify_input(astronaut: np.ndarray) -> None:
    img = astronaut[:64, :64].copy()
    for fn in RANDOM_FUNCTIONS.values():
        fn(img, np.random.default_rng(0))
    np.testing.assert_array_equal(img, astronaut[:64, :64])


# --------------------------------------------------------------------------------------------- pipelines


@pytest.mark.parametrize("hw", [(64, 64), (36, 52), (20, 44), (37, 50)])
def test_realesrgan_output_shape_and_range(hw: tuple[int, int]) -> None:
    h, w = hw
    hr = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    pipeline = RealESRGANDegradation(scale=4)
    assert pipeline.scale == 4
    for seed in range(6):
        lq = pipeline(hr, np.random.default_rng(seed))
        assert lq.shape == (h // 4, w // 4, 3)
        assert lq.dtype == np.float32
        assert lq.min() >= 0.0 and lq.max() <= 1.0


def test_realesrgan_scale_2_shape(astronaut: np.ndarray) -> None:
    assert RealESRGANDegradation(scale=2)(astronaut[:50, :42], np.random.default_rng(0)).shape == (25, 21, 3)


def test_realesrgan_is_blurrier_than_bicubic(astronaut: np.ndarray) -> None:
    bicubic = BicubicDegradation(4)(astronaut, np.random.default_rng(0))
    pipeline = RealESRGANDegradation(scale=4)
    reference = laplacian_energy(bicubic)
    ratios = [laplacian_energy(pipeline(astronaut, np.random.default_rng(s))) / reference for s in range(8)]
    # blur and down-up resizing remove detail; noise adds some back, so compare the average, with margin
    assert np.mean(ratios) < 0.7


def test_realesrgan_adds_noise_to_flat_image() -> None:
    flat = grey(64, 64, 0.5)
    assert BicubicDegradation(4)(flat, np.random.default_rng(0)).std() < 1e-4
    pipeline = RealESRGANDegradation(scale=4)
    for seed in range(6):
        assert pipeline(flat, np.random.default_rng(seed)).std() > 1e-3  # every draw holds noise


def test_second_order_false_skips_second_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"jpeg": 0, "noise": 0}
    real_jpeg, real_noise = D.jpeg, D.random_noise

    def counting_jpeg(img, quality):
        calls["jpeg"] += 1
        return real_jpeg(img, quality)

    def counting_noise(img, rng, **kwargs):
        calls["noise"] += 1
        return real_noise(img, rng, **kwargs)

    monkeypatch.setattr(D, "jpeg", counting_jpeg)
    monkeypatch.setattr(D, "random_noise", counting_noise)
    hr = grey(32, 32)
    RealESRGANDegradation(scale=4, second_order=True)(hr, np.random.default_rng(0))
    assert calls == {"jpeg": 3, "noise": 2}  # stage 1, stage 2, final JPEG
    calls.update(jpeg=0, noise=0)
    RealESRGANDegradation(scale=4, second_order=False)(hr, np.random.default_rng(0))
    assert calls == {"jpeg": 2, "noise": 1}  # stage 1 and final only


def test_realesrgan_accepts_lists_and_rejects_bad_lengths() -> None:
    RealESRGANDegradation(scale=4, blur_sigma=[0.2, 3], resize_prob=[0.2, 0.7, 0.1])  # as Hydra passes them
    with pytest.raises(ValueError):
        RealESRGANDegradation(scale=4, resize_prob=[0.5, 0.5])
    with pytest.raises(ValueError):
        RealESRGANDegradation(scale=4, blur_sigma=[0.2, 1.0, 3.0])


def test_bicubic_degradation_shape_and_8bit_levels(astronaut: np.ndarray) -> None:
    lq = BicubicDegradation(4)(astronaut[:64, :48], np.random.default_rng(0))
    assert lq.shape == (16, 12, 3) and lq.dtype == np.float32
    assert lq.min() >= 0 and lq.max() <= 1
    np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)  # like the literature's LR PNGs
    raw = BicubicDegradation(4, quantize=False)(astronaut[:64, :48])
    assert 0 < np.abs(raw - lq).max() <= 0.5 / 255 + 1e-6


def test_realesrgan_output_is_8bit(astronaut: np.ndarray) -> None:
    lq = RealESRGANDegradation(scale=4)(astronaut[:64, :64], np.random.default_rng(3))
    np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)
