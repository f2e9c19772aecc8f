"""Shared test fixtures: real data from ../shared/data, skipped with a reason where absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared benchmark/footage data beside the repo); not present here")
    return path


@pytest.fixture
def set5_x4() -> Path:
    return shared_path("benchmarks", "Set5", "x4")


@pytest.fixture
def set14_x4() -> Path:
    return shared_path("benchmarks", "Set14", "x4")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs/ folder holding a tiny untrained export of every task (pipeline tests; one per test module)."""
    from pipeline_utils import make_export

    runs = tmp_path_factory.mktemp("runs")
    for task in ("restore", "colorize", "sr", "interp"):
        make_export(runs, f"tiny_{task}", task)
    return runs
