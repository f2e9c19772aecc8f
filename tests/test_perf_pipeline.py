"""bench/perf_pipeline.py (the film pipeline's frames/s and overhead in make bench): the forward clock counts a
network once however deep its modules call each other, the verdict follows the goal, and a quick run over the real
newsreel writes figures that add up."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import perf_common  # noqa: E402
import perf_pipeline  # noqa: E402
import perf_summary  # noqa: E402


class Slow(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.inner = seconds, nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.inner(self.inner(x))


def test_forward_clock_times_top_level_calls_only_and_stops_after() -> None:
    net, x = Slow(0.05), torch.zeros(1, 1, 4, 4)
    clock = perf_pipeline.ForwardClock()
    with clock.running():
        net(x)
        net(x)
        net.inner(x)  # a submodule called on its own is a top-level call of its own class
    net(x)  # after the block: not counted
    assert clock.calls == {"Slow": 2, "Conv2d": 1}  # the inner convs inside Slow are not counted again
    assert 0.1 <= clock.seconds["Slow"] < 0.5 and clock.seconds["Conv2d"] < 0.05


def _run(fps: float, overhead: float, beside: bool = True) -> dict:
    forward = 96 / fps * (1 - overhead)
    return {"overlap": beside, "input_frames": 96, "wall_s": 96 / fps, "input_frames_per_s": fps,
            "forward_s": forward, "overhead": overhead, "forward_s_per_generator": {"SRResNet": 1.0},
            "forward_only_input_frames_per_s": 96 / forward}


@pytest.mark.parametrize("fps,overhead,meets", [(1.6, 0.05, True), (1.4, 0.05, False), (1.6, 0.12, False)])
def test_verdict_needs_both_speed_and_low_overhead(fps: float, overhead: float, meets: bool) -> None:
    runs = [_run(fps, overhead), _run(fps / 1.25, overhead + 0.1, beside=False)]
    result = perf_pipeline.summarise(runs, default_overlap=True)
    assert result["meets_goal"] is meets and result["default"]["overlap"] is True
    assert result["overlap_speedup"] == pytest.approx(1.25, abs=1e-3)
    # the models' own ceiling comes from the run without threads beside them
    assert result["forward_only_input_frames_per_s"] == pytest.approx(fps / 1.25 / (1 - overhead - 0.1), rel=1e-3)
    # the verdict is the default mode's: off, it judges the slower run
    assert perf_pipeline.summarise(runs, default_overlap=False)["meets_goal"] is False


def test_quick_run_over_the_newsreel_adds_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not perf_pipeline.CLIP.is_file():
        pytest.skip(f"needs {perf_pipeline.CLIP} (../shared/data/footage), not present here")
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setattr(perf_common, "RESULTS", tmp_path)
    monkeypatch.setattr(perf_pipeline, "SCRATCH", tmp_path / "scratch")
    perf_pipeline.main(["--frames", "3"])
    r = json.loads((tmp_path / "pipeline.json").read_text())
    (run,) = r["runs"]
    # every stage's generator ran: restore, colorize, x2 upscale, interpolate
    assert set(run["forward_s_per_generator"]) == {"RestoreUNet", "ColorizeUNet", "SRResNet", "InterpolationNet"}
    assert 0 < run["forward_s"] < run["wall_s"]
    assert run["overhead"] == pytest.approx((run["wall_s"] - run["forward_s"]) / run["wall_s"], abs=5e-4)
    assert run["input_frames_per_s"] == pytest.approx(3 / run["wall_s"], rel=0.01)
    assert run["forward_only_input_frames_per_s"] == pytest.approx(3 / run["forward_s"], rel=0.01)
    assert (tmp_path / "scratch" / "newsreel_overlap_off.mp4").is_file()
    monkeypatch.setattr(perf_summary, "RESULTS", tmp_path)
    text = perf_summary.write_summary().read_text()
    assert "## The film pipeline (bench/perf_pipeline.py)" in text and "**Pipeline with its defaults (video.overlap=off" in text
