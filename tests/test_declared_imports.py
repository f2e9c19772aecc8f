"""Every third-party package the code imports is declared in pyproject.toml (a dependency, or an optional extra):
an installed wheel must not fail on an import that only this machine's .venv happened to satisfy."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _imported(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a file, wherever they are (functions' lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normal(Requirement(r).name) for r in requirements}


def test_every_imported_package_is_declared() -> None:
    files = sorted((ROOT / "src").rglob("*.py")) + sorted(ROOT.glob("*.py"))
    modules: dict[str, set[str]] = {}
    for path in files:
        for name in _imported(path):
            modules.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    third_party = {m: where for m, where in modules.items()
                   if m not in sys.stdlib_module_names and m not in ("__future__", "restoregan")}
    assert {"torch", "hydra", "cv2", "PIL"} <= set(third_party)  # the walk sees imports at all
    distributions, declared = packages_distributions(), _declared()
    missing = {}
    for module, where in sorted(third_party.items()):
        provided_by = {_normal(d) for d in distributions.get(module, [])}
        if not provided_by & declared:
            missing[module] = (sorted(provided_by) or "not installed", sorted(where)[:3])
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
