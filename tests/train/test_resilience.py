"""Long runs: SIGTERM/SIGINT checkpoint and exact resumption, the output folder checked at start, data errors on one
line."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo.errors import ConfigError, DatasetError
from zoo.evaluate import main as evaluate_main
from zoo.train import run
from zoo.train.checkpoint import load_checkpoint
from zoo.train.cli import main

from .conftest import PLUGIN, tiny

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = ["model.dropout=0.3", "after_step.test-pause={}"]


def _command(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "zoo.train", tiny.RECIPE, "--plugin", str(PLUGIN), "--data", str(data_root)),
        *("--out", str(out), "--device", "cpu", "--workers", "0", "--no-tensorboard", "--no-progress", *OVERRIDES),
        *extra,
    ]


def _interrupt(data_root: Path, out: Path, marker: Path, step: int, signal_number: int, *extra: str) -> str:
    """Run the CLI until step `step`, send `signal_number`, return its stderr (after checking the clean exit)."""
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TINY_PAUSE_AT_STEP": str(step),
        "TINY_PAUSE_MARKER": str(marker),
    }
    process = subprocess.Popen(
        _command(data_root, out, *extra),
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), process.communicate()[1][-3000:]
    process.send_signal(signal_number)
    time.sleep(0.2)
    marker.unlink()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal_number, stderr[-3000:]
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.slow
def test_signals_checkpoint_mid_epoch_and_resume_is_bit_exact(make_config, data_root, tmp_path):
    """Real signals: SIGTERM at step 6 of 12 (epoch 2, step 2 of 4), then, resumed, SIGINT at step 11 (epoch 3,
    step 3); each time last.pt holds the state after that step, and the final resumption ends with the weights and
    the epoch metrics of an uninterrupted run (dropout exercises the restored random states)."""
    out, marker = tmp_path / "interrupted", tmp_path / "paused"
    stderr = _interrupt(data_root, out, marker, 6, signal.SIGTERM)
    assert "SIGTERM: stopped after 6 optimiser steps (1 complete epochs)" in stderr
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 6
    assert [totals["steps"] for totals in checkpoint["within_epoch"]["totals"]] == [2]
    assert "SIGTERM: stopped after 6 optimiser steps" in (out / "train.log").read_text()

    stderr = _interrupt(data_root, out, marker, 11, signal.SIGINT, "--resume", "auto")
    assert "SIGINT: stopped after 11 optimiser steps (2 complete epochs)" in stderr
    assert load_checkpoint(out / "last.pt")["within_epoch"]["totals"][0]["steps"] == 3

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run(
        _command(data_root, out, "--resume", "auto"),
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    torch.set_num_threads(1)
    straight = run(make_config("straight", overrides=OVERRIDES))
    final = load_checkpoint(out / "last.pt")
    assert final["epoch"] == 3 and final["global_step"] == 12 and "within_epoch" not in final
    for key, value in straight.model.state_dict().items():
        assert torch.equal(final["model"][key], value), key
    with (out / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for row, entry in zip(rows, straight.history, strict=True):
        for split, values in entry["metrics"].items():
            for metric, value in values.items():
                assert float(row[f"{split}_{metric}"]) == value, (row["epoch"], split, metric)


def test_unwritable_output_fails_before_training(make_config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"run directory '.*a-file/run' is not writable"):
        run(make_config(out=str(blocker / "run")))


def test_full_disk_fails_at_the_probe_write(make_config, monkeypatch):
    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    config = make_config(overrides=["after_step.test-record={}"])
    with pytest.raises(ConfigError, match=r"is not writable \(the disk is full\); choose another --out"):
        run(config)
    assert list(config.out.iterdir()) == [], "no checkpoint, log or probe file may be left"


def test_too_little_free_space_fails_at_start(make_config, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ConfigError, match=r"has 0.0 MB free, checkpoints need about 3.\d MB"):
        run(make_config())


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sample_failing_mid_epoch_is_one_line_with_exit_status_2(data_root, tmp_path, capsys, workers):
    arguments = [tiny.RECIPE, "--plugin", str(PLUGIN), "--data", str(data_root), "--out", str(tmp_path / "run")]
    arguments += ["--device", "cpu", "--workers", str(workers), "--no-tensorboard", "data.broken_index=37"]
    assert main(arguments) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m zoo.train: error: dataset 'test-engine-blobs', split 'train': batch ")
    assert err.endswith(f"failed: ValueError: {data_root / 'train.pt'}: sample 37 is corrupt")
    assert "\n" not in err and "Traceback" not in err
    with pytest.raises(DatasetError, match="sample 37 is corrupt"):
        main([*arguments, "--debug", "--resume", "auto"])


def test_evaluate_reports_a_failing_sample_on_one_line(make_config, data_root, capsys):
    result = run(make_config(epochs=1))
    arguments = ["--checkpoint", str(result.last_checkpoint), "--data", str(data_root), "--device", "cpu"]
    assert evaluate_main([*arguments, "data.broken_index=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"python -m zoo.evaluate: error: dataset 'test-engine-blobs', split 'test': batch 1 failed: ValueError: "
        f"{data_root / 'test.pt'}: sample 3 is corrupt"
    )
    with pytest.raises(DatasetError):
        evaluate_main([*arguments, "data.broken_index=3", "--debug"])


def test_a_dataset_that_cannot_be_built_is_one_line(data_root, tmp_path, capsys):
    (data_root / "val.pt").write_bytes(b"not a torch file")
    arguments = [tiny.RECIPE, "--plugin", str(PLUGIN), "--data", str(data_root), "--out", str(tmp_path / "run")]
    assert main([*arguments, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m zoo.train: error: dataset 'test-engine-blobs', split 'val' under ")
    assert "UnpicklingError" in err and "\n" not in err and not (tmp_path / "run").exists()
