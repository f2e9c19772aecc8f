"""The package as a user installs it: a wheel built from the repository, installed in a fresh venv, whose console
scripts run from a folder that is not the repository (configs read from the installed package, pkg://).

The fresh venv gets its dependencies through a .pth file naming this .venv's site-packages (installing torch and
the rest again takes minutes and needs the network). A .pth line only adds that folder to sys.path; the .pth files
inside it are not run, so the editable install's finder (which maps `restoregan` to src/) stays off: the test
asserts that `restoregan` is imported from the fresh venv, i.e. the wheel's own files are used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("restoregan-train", "restoregan-evaluate", "restoregan-infer", "restoregan-export")


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESTOREGAN_TRACEBACK")}
    proc = subprocess.run(args, cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding only the wheel (plus this .venv's packages on its path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: an in-tree build would leave build/ and *.egg-info in the repository
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name if source.exists() else _mkdir(source) / name)
    for folder in ("src", "conf"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # no build isolation: setuptools from this venv, no download
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(source)], tmp)
    (wheel,) = (tmp / "dist").glob("restoregan-*.whl")

    target = tmp / "venv"
    venv.create(target, with_pip=False)  # pip below runs from this venv against the new one (pip --python)
    python = target / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], tmp)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp)
                .stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (tmp / "wheel_path").write_text(str(wheel))
    return target / "bin"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.mark.slow
def test_wheel_holds_the_configs_and_every_data_file(installed: Path) -> None:
    wheel = Path((installed.parent.parent / "wheel_path").read_text())
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"restoregan/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    # any file src/ holds besides code (model manifests, ...): the installed code may read it
    expected |= {f"restoregan/{p.relative_to(ROOT / 'src')}" for p in (ROOT / "src").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert expected - names == set()
    scripts = [line.split("=")[0].strip() for line in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode().splitlines() if "=" in line]
    assert sorted(scripts) == sorted(SCRIPTS)


@pytest.mark.slow
def test_installed_commands_run_from_any_folder(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"  # not the repository: no conf/ beside it, nothing of src/ on the path
    work.mkdir()
    where = _run([str(installed / "python"), "-c", "import restoregan.entry, restoregan.conf; "
                  "print(restoregan.entry.__file__); print(restoregan.conf.__file__)"], work).stdout.split()
    for path in where:
        assert Path(path).is_relative_to(installed.parent), where  # the wheel's files, not the repository's

    help_text = _run([str(installed / "restoregan-infer"), "--help"], work).stdout
    assert "python infer.py ckpt=" in help_text and "pipeline: film" in help_text and "experiment:" not in help_text

    hr = work / "hr"  # two tiny photos-like images; a relative path, resolved against the folder the command runs in
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(hr / f"img{i}.png")
    _run([str(installed / "restoregan-evaluate"), "task=sr", "task.scale=2", "hr_dir=hr", "out_dir=out",
          "device=cpu", "lpips=false"], work)
    report = json.loads((work / "out" / "metrics.json").read_text())
    assert (work / "out" / "metrics.md").is_file()
    assert "bicubic" in json.dumps(report)
