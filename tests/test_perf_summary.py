"""bench/perf_summary.py: the summary of the committed perf results names every figure issue 6 asks for, and its
verdicts follow the figures (a framework overhead above 5% or a loader that falls behind is called out)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import perf_summary  # noqa: E402

STORED = ROOT / "bench" / "results" / "perf"
NAMES = ("training", "data", "inference")


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not all((STORED / f"{n}.json").exists() for n in NAMES):
        pytest.skip("no stored perf results (run `make bench`)")
    for n in NAMES:
        shutil.copy(STORED / f"{n}.json", tmp_path / f"{n}.json")
    monkeypatch.setattr(perf_summary, "RESULTS", tmp_path)
    return tmp_path


def test_summary_names_every_figure(results: Path) -> None:
    text = perf_summary.write_summary().read_text()
    for figure in ("it/s", "overhead vs plain loop", "process peak RSS MiB",  # training
                   "patches/s", "ours / reference", "keeps up", "pinned memory",  # data
                   "frames/s at 480p", "peak MiB at 480p", "of peak", "spandrel",  # inference
                   "channels_last", "inference_mode", "bf16", "torch.compile", "batching", "tiling", "fused_adam"):
        assert figure in text, figure
    training = json.loads((results / "training.json").read_text())
    for name in ("sr_quickstart", "colorize_quickstart", "interp_quickstart", "film_restore_quickstart",
                 "srgan_x4", "esrgan_x4", "realesrgan_x4", "colorize", "interp", "film_restore"):
        assert name in training["configs"] and f"| {name} |" in text


def test_verdicts_follow_the_figures(results: Path) -> None:
    training = json.loads((results / "training.json").read_text())
    phase = next(iter(training["configs"]["sr_quickstart"]["phases"].values()))
    phase["framework_overhead_percent"] = 97.3
    (results / "training.json").write_text(json.dumps(training))
    data = json.loads((results / "data.json").read_text())
    data["loader"]["sr_quickstart"]["keeps_up"] = False
    (results / "data.json").write_text(json.dumps(data))
    text = perf_summary.write_summary().read_text()
    assert "+97.3%**: MISSES the 5% bar" in text
    assert "| **no** |" in text
