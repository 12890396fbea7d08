"""Shared test fixtures: where the reference fixtures of the original code live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ENV = "JELLYZOO_REFERENCE"


def reference_root() -> Path:
    """`$JELLYZOO_REFERENCE`, or `../shared/reference` beside the repository (as in CI)."""
    return Path(os.environ.get(REFERENCE_ENV, REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The reference folder; the test is skipped, saying why, where it is absent (e.g. a user's clone)."""
    root = reference_root()
    if not root.is_dir():
        pytest.skip(f"reference fixtures not found at {root} (set {REFERENCE_ENV} to the shared/reference folder)")
    return root
