"""Packaging: pyproject.toml lists every package, and installs `kernels/` and `datasets/` under `zoo`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"zoo": "zoo", "zoo.kernels": "kernels", "zoo.datasets": "datasets"}


def test_pyproject_lists_every_package_under_its_installed_name() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == FOLDERS
    found = set()
    for package, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            if package == "zoo" and relative[:1] in (("kernels",), ("datasets",)):
                continue
            found.add(".".join((package, *relative)))
    assert sorted(setuptools["packages"]) == sorted(found)
    assert setuptools["package-data"]["zoo.kernels"] == ["*.cu", "*.cuh"]
    assert list((ROOT / "kernels").glob("*.cu")), "kernels/*.cu are the package data"
