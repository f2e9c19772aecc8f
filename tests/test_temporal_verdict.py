"""The temporal report's verdict cannot be fooled: a result that destroys the picture (black, constant, heavily
blurred, averaged over time) has no flicker, yet must not be called "flicker reduced"; a mild deflicker must."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from interp_utils import scene, write_folder
from restoregan.data.io import read_image
from restoregan.evaluation.temporal import evaluate_temporal
from restoregan.metrics.fidelity import gradient_magnitude, gradient_ssim_map, tenengrad

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT.parent / "shared" / "data" / "footage" / "old_film_frames_001"
CONF = OmegaConf.load(ROOT / "conf" / "evaluate.yaml").temporal  # the documented thresholds


def report_for(tmp: Path, frames: list[np.ndarray], result: list[np.ndarray], name: str) -> dict:
    src = tmp / "in"
    if not src.exists():
        write_folder(src, frames)
    cfg = OmegaConf.create({"input": str(src), "result": str(write_folder(tmp / name, result)),
                            "out_dir": str(tmp / f"eval_{name}"), "dataset": None, "temporal": CONF})
    return evaluate_temporal(cfg)


def assert_fails(report: dict, *labels: str) -> None:
    assert not report["flicker_reduced"]
    assert report["verdict"].startswith("fidelity failed:")
    failed = {c["label"] for c in report["checks"] if c["passed"] is False}
    assert set(labels) <= failed, (report["verdict"], failed)
    for label in labels:
        assert label in report["verdict"]


def mild_deflicker(frames: list[np.ndarray], strength: float = 0.5, window: int = 5) -> list[np.ndarray]:
    """Each frame's mean brightness pulled `strength` of the way toward a moving average of the means."""
    means = np.array([f.mean() for f in frames])
    smooth = np.convolve(np.pad(means, window // 2, mode="edge"), np.ones(window) / window, "valid")
    return [np.clip(f + strength * (s - m), 0, 1).astype(np.float32) for f, m, s in zip(frames, means, smooth)]


def test_sobel_gradient_and_tenengrad_of_a_ramp() -> None:
    """A luma ramp of slope a per pixel: the 3x3 Sobel ([1 2 1] x [-1 0 1]) gives 8 a; Tenengrad its square."""
    a = 0.01
    ramp = np.repeat((np.arange(40, dtype=np.float32) * a)[None, :, None], 30, axis=0).repeat(3, axis=2)
    g = gradient_magnitude(ramp, sigma=0)
    assert g[5:-5, 5:-5] == pytest.approx(8 * a, rel=1e-4)
    assert tenengrad(g[5:-5, 5:-5]) == pytest.approx(64 * a * a, rel=1e-4)
    assert gradient_ssim_map(g, g).mean() == pytest.approx(1.0)
    assert gradient_ssim_map(g, np.zeros_like(g)).mean() < 0.1


def test_synthetic_black_and_blur_fail_and_a_deflicker_passes(tmp_path: Path) -> None:
    """Needs no data: a textured moving scene with a brightness flicker of +-0.03 added."""
    clean = scene(8, h=64, w=80)
    flicker = [np.clip(f + (0.03 if i % 2 else -0.03), 0, 1) for i, f in enumerate(clean)]
    black = report_for(tmp_path, flicker, [np.zeros_like(f) for f in flicker], "black")
    assert black["relative"] == 0.0  # the flicker figure alone would call this perfect
    assert_fails(black, "gradient SSIM", "sharpness ratio")
    assert "fidelity failed" in (tmp_path / "eval_black" / "metrics.md").read_text()
    blur = report_for(tmp_path, flicker, [cv2.GaussianBlur(f, (0, 0), 4) for f in flicker], "blur")
    assert blur["relative"] < 1
    assert_fails(blur, "gradient SSIM", "sharpness ratio")
    good = report_for(tmp_path, flicker, clean, "clean")  # the flicker removed exactly
    assert good["relative"] < 0.5 and good["verdict"] == "flicker reduced" and good["flicker_reduced"]
    assert good["fidelity"]["gradient_ssim"] > 0.99  # a brightness offset leaves the gradients as they were
    assert "**Verdict: flicker reduced**" in (tmp_path / "eval_clean" / "metrics.md").read_text()


@pytest.fixture(scope="module")
def footage() -> list[np.ndarray]:
    if not FOOTAGE.is_dir():
        pytest.skip(f"real footage absent: {FOOTAGE} (see ../shared/data/README.md)")
    files = sorted(FOOTAGE.glob("*.png"), key=lambda p: int(p.stem))[:12]
    # half size (290x170) keeps the test quick; area averaging keeps the grain's character
    return [cv2.resize(read_image(f), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in files]


def test_real_clip_destroyed_results_fail_by_name(tmp_path: Path, footage: list[np.ndarray]) -> None:
    n = len(footage)
    cases = {
        "black": ([np.zeros_like(f) for f in footage], ("gradient SSIM", "sharpness ratio")),
        "grey": ([np.full_like(f, 0.5) for f in footage], ("gradient SSIM", "sharpness ratio")),
        "blur": ([cv2.GaussianBlur(f, (0, 0), 4) for f in footage], ("gradient SSIM", "sharpness ratio")),
        # each frame the mean of a 9-frame window: no flicker, motion smeared
        "mush": ([np.mean(footage[max(0, i - 4) : i + 5], axis=0) for i in range(n)],
                 ("gradient SSIM", "gradient SSIM where the input moves")),
    }
    for name, (result, failing) in cases.items():
        report = report_for(tmp_path, footage, result, name)
        assert report["relative"] < 1, name  # each looks steadier than the input: the warp error is fooled
        assert_fails(report, *failing)


def test_real_clip_mild_deflicker_passes(tmp_path: Path, footage: list[np.ndarray]) -> None:
    report = report_for(tmp_path, footage, mild_deflicker(footage), "deflicker")
    assert report["relative"] < 1
    assert report["verdict"] == "flicker reduced", report["verdict"]
    assert all(c["passed"] for c in report["checks"])
    assert report["fidelity"]["moving_fraction"] > 0.1  # the moving-pixel check did apply


def test_bad_fidelity_option_is_refused_in_one_line(tmp_path: Path) -> None:
    frames = scene(3)
    src, res = write_folder(tmp_path / "in", frames), write_folder(tmp_path / "out", frames)
    for key, value, message in (("min_sharpness", -1, "temporal.fidelity.min_sharpness must be a number >= 0"),
                                ("min_ssim", 0.5, "temporal.fidelity.min_ssim: unknown option")):
        cfg = OmegaConf.create({"input": str(src), "result": str(res), "out_dir": str(tmp_path / "e"), "dataset": None,
                                "temporal": {**OmegaConf.to_container(CONF), "fidelity": {key: value}}})
        with pytest.raises(ValueError, match=message):
            evaluate_temporal(cfg)
    assert not (tmp_path / "e").exists()
