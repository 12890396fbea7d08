"""Fixtures of the engine tests: the test-only plugin (tiny model, dataset, recipe) and its data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.train import RunConfig, load_plugin

PLUGIN = Path(__file__).with_name("tiny_plugin.py")
tiny = load_plugin(str(PLUGIN))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """64 training, 30 validation and 24 test samples of the tiny blobs dataset."""
    return tiny.write_blobs(tmp_path / "data", {"train": 64, "val": 30, "test": 24})


@pytest.fixture
def make_config(data_root: Path, tmp_path: Path):
    """`RunConfig` factory for the tiny recipe: CPU, no workers, no progress bar, output under tmp_path."""

    def factory(out: str = "run", **changes) -> RunConfig:
        settings = {
            "recipe": tiny.RECIPE,
            "data": data_root,
            "out": tmp_path / out,
            "device": "cpu",
            "workers": 0,
            "progress": False,
            "tensorboard": False,
        }
        return RunConfig(**{**settings, **changes})

    return factory
