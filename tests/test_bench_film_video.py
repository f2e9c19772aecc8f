"""bench/film_restore_video.py's pure helpers on made-up inputs: pooling of evaluate.py reports, the issue's bars,
the table, the frame picks, the damage crop and the contact sheet's 1:1 crops. No training runs here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import film_restore_video as bench  # noqa: E402


def report(clips: dict[str, list[float]]) -> dict:
    """evaluate.py's `methods` block: per method, its per-clip PSNR (SSIM = PSNR / 100) and their means."""
    return {m: {"psnr": float(np.mean(v)), "ssim": float(np.mean(v)) / 100,
                "images": [{"image": f"c{i}", "psnr": p, "ssim": p / 100} for i, p in enumerate(v)]}
            for m, v in clips.items()}


A = report({"damaged": [25.0, 27.0], "median": [26.0, 27.0], "temporal": [30.0, 32.0], "single": [29.0, 33.0]})
B = report({"damaged": [17.0], "median": [18.0], "temporal": [20.0], "single": [18.0]})


def test_set_summary():
    s = bench.set_summary(A)
    assert s["clips"] == 2
    assert s["psnr"] == {"damaged": 26.0, "median": 26.5, "single": 31.0, "temporal": 31.0}
    assert list(s["psnr"]) == ["damaged", "median", "single", "temporal"]  # baselines first, whatever the task has
    assert s["gain_over_single_db"] == 0.0 and s["gain_over_damaged_db"] == 5.0
    assert s["clips_temporal_beats_single"] == 1  # 30 > 29, 32 < 33


def test_pooled_is_over_clips_not_set_means():
    p = bench.pooled({"A": A, "B": B})
    assert p["clips"] == 3 and p["sets"] == ["A", "B"]
    assert p["psnr"]["temporal"] == pytest.approx(82 / 3, abs=1e-3)
    assert p["psnr"]["single"] == pytest.approx(80 / 3, abs=1e-3)
    assert p["gain_over_single_db"] == pytest.approx(2 / 3, abs=1e-3)  # the mean of set gains would be 1.0
    assert p["gain_over_damaged_db"] == pytest.approx((82 - 69) / 3, abs=1e-3)
    assert p["ssim"]["damaged"] == pytest.approx(0.23, abs=1e-4)
    assert p["clips_temporal_beats_single"] == 2
    assert bench.pooled({}) is None


def test_infinite_psnr_left_out_of_means_and_counted():
    """A clip whose damaged frames equal the clean ones scores inf: evaluate.py's means leave it out, so do ours."""
    c = report({"damaged": [float("inf"), 20.0], "median": [21.0, 22.0], "temporal": [40.0, 24.0],
                "single": [39.0, 23.0]})
    c["damaged"]["psnr"] = 20.0  # evaluate.py's finite mean
    one = bench.set_summary(c)
    assert one["clips_with_infinite_psnr"] == {"damaged": 1} and one["psnr"]["damaged"] == 20.0
    assert one["gain_over_damaged_db"] == 4.0  # paired on the second clip, not 32 - 20
    p = bench.pooled({"A": A, "C": c})
    assert p["psnr"]["damaged"] == pytest.approx(24.0) and p["clips_with_infinite_psnr"] == {"damaged": 1}
    assert p["gain_over_damaged_db"] == pytest.approx(14 / 3, abs=1e-3)
    assert "clips_with_infinite_psnr" not in bench.pooled({"A": A})


def footage(relative: float | None, reduced: bool) -> dict:
    return {"single": {"relative": 0.95, "flicker_reduced": True},
            "temporal": {"relative": relative, "flicker_reduced": reduced}}


def test_done_when():
    three = {"a": footage(0.7, True), "b": footage(0.5, True), "c": footage(0.79, True)}
    done = bench.done_when({"gain_over_single_db": 1.2}, three)
    assert done["pooled_gain_over_single_1db"] is True and done["footage_all_pass"] is True
    done = bench.done_when({"gain_over_single_db": 0.9}, {**three, "b": footage(0.85, True)})
    assert done["pooled_gain_over_single_1db"] is False and done["footage_all_pass"] is False
    assert done["footage_relative_below_0.8_and_verdict"]["b"] == {"relative_below": False, "verdict_passes": True}
    # a low flicker figure that failed the fidelity checks does not pass (a black output has none)
    assert bench.done_when(None, {**three, "c": footage(0.1, False)})["footage_all_pass"] is False
    assert bench.done_when(None, {**three, "c": footage(None, False)})["footage_all_pass"] is False
    missing = bench.done_when(None, {"a": footage(0.7, True)})
    assert missing["pooled_gain_over_single_1db"] is None and missing["footage_all_pass"] is None


def test_footage_figures_and_table():
    temporal = {"relative": 0.6, "pairs": 23, "verdict": "flicker reduced", "flicker_reduced": True,
                "fidelity": {"gradient_ssim": 0.9, "sharpness_ratio": 0.8, "moving_gradient_ssim": None}}
    f = bench.footage_figures(temporal)
    assert f == {"relative": 0.6, "gradient_ssim": 0.9, "sharpness_ratio": 0.8, "moving_gradient_ssim": None,
                 "verdict": "flicker reduced", "flicker_reduced": True, "pairs": 23}
    results = {"held_out": {"Set5": bench.set_summary(A)}, "held_out_all": bench.pooled({"A": A, "B": B}),
               "footage": {"reel": {"temporal": f}}}
    table = bench.markdown(results).splitlines()
    assert ("| Set5 | 2 | 26.00 / 0.2600 | 26.50 / 0.2650 | 31.00 / 0.3100 | 31.00 / 0.3100 | +0.00 dB | +5.00 dB "
            "| 1/2 |") in table
    assert any(r.startswith("| **all (pooled)** | 3 |") and "+0.67 dB" in r for r in table)
    assert "| reel | temporal | 0.600 | 0.900 | 0.800 | n/a | flicker reduced |" in table


def test_pick_frames():
    assert bench.pick_frames(24, 3) == [4, 12, 20]
    assert bench.pick_frames(2, 3) == [0, 1]
    assert bench.pick_frames(1, 3) == [0]
    assert bench.pick_frames(0, 3) == []


def brute_force_box(img: np.ndarray, side: int) -> tuple[int, int]:
    from scipy.ndimage import median_filter

    grey = img.astype(np.float64).mean(-1)
    e = np.abs(grey - median_filter(grey, size=3, mode="nearest"))
    h, w = e.shape
    sums = np.array([[e[t:t + side, s:s + side].sum() for s in range(w - side + 1)] for t in range(h - side + 1)])
    return np.unravel_index(int(np.argmax(sums)), sums.shape)


def test_damage_box_finds_dust_not_edges():
    h, w = 60, 90
    img = np.tile(np.linspace(0.2, 0.6, w, dtype=np.float32), (h, 1))
    img[:, :30] += 0.3  # a hard straight scene edge: its 3x3 median keeps it, so it is no damage
    rng = np.random.default_rng(0)
    specks = rng.integers([44, 62], [52, 78], size=(6, 2))
    for y, x in specks:
        img[y, x] = 1.0  # dust specks in an 8 x 16 region
    img = np.repeat(img[..., None], 3, axis=-1)
    top, left, side = bench.damage_box(img, 24)
    assert side == 24 and (top, left) == tuple(brute_force_box(img, 24))
    assert all(top <= y < top + side and left <= x < left + side for y, x in specks)
    assert bench.damage_box(img, 500)[2] == h  # clipped to the frame


def find_block(sheet: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    """Every place where `block` appears pixel for pixel in `sheet` (both uint8 H x W x 3)."""
    first = block[0].tobytes()
    hits = []
    for y in range(sheet.shape[0] - block.shape[0] + 1):
        row = sheet[y].tobytes()
        at = row.find(first)
        while at != -1:
            if at % 3 == 0:
                x = at // 3
                if np.array_equal(sheet[y:y + block.shape[0], x:x + block.shape[1]], block):
                    hits.append((y, x))
            at = row.find(first, at + 1)
    return hits


def test_contact_sheet_keeps_crops_at_full_resolution():
    rng = np.random.default_rng(1)
    h, w, side = 120, 200, 48
    ramp = np.linspace(0.1, 0.5, w, dtype=np.float32)[None, :, None]
    columns = {m: [ramp + 0.01 * rng.random((h, w, 3), dtype=np.float32) for _ in range(3)]
               for m in ("input", "single", "temporal")}
    columns["input"][1][70:80:3, 150:160:3] = 1.0  # dust in the middle frame of the input
    sheet = np.asarray(bench.contact_sheet(columns, ["f0", "f1", "f2"], crop=side, cell=100))
    top, left, s = bench.damage_box(columns["input"][1], side)
    assert s == side and top <= 70 and top + side >= 80 and left <= 150 and left + side >= 160
    for method, frames in columns.items():
        block = np.round(frames[1][top:top + side, left:left + side] * 255).astype(np.uint8)
        assert len(find_block(sheet, block)) == 1, method  # 1:1, not resized, once
    # three rows of frames shrunk to 60 x 100 above the crops, three columns wide
    assert sheet.shape[0] >= 3 * 60 + side and 3 * 100 <= sheet.shape[1] < 3 * 100 + 40


def test_table_has_a_column_per_baseline():
    """The task's baselines come from its report (a temporal median may join): each gets its column."""
    d = report({"damaged": [25.0], "median": [26.0], "temporal_median": [27.0], "temporal": [30.0],
                "single": [29.0]})
    table = bench.markdown({"held_out": {"X": bench.set_summary(d)}}).splitlines()
    assert table[0].startswith("| held out | clips | damaged | median 3x3 | temporal median 3 | single | temporal |")
    assert table[2] == ("| X | 1 | 25.00 / 0.2500 | 26.00 / 0.2600 | 27.00 / 0.2700 | 29.00 / 0.2900 | "
                        "30.00 / 0.3000 | +1.00 dB | +5.00 dB | 1/1 |")
