"""DistributedDataParallel through torchrun: 2 CPU processes (gloo) equal 1 process with the same global batch.

Each process takes half of every global batch (see `zoo.train.data`) and DDP averages the two half-batch mean
gradients, which is the full-batch mean gradient up to float32 summation order. So the weights after 2 epochs
(8 steps of AdamW with warm-up and cosine) agree to ~1e-7; a wrong sample split, gradient scaling or schedule
would change them by about lr * 1 = 1e-2 per step. With ``average_last=2`` the averaged weights are evaluated
sharded too: every process must evaluate rank 0's mean, not its own final weights. Marked slow: three fresh
Python processes (the torchrun agent and two workers) each import torch and the zoo, about 10-20 s on 2 shared cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.train import run
from zoo.train.checkpoint import load_checkpoint

from .conftest import PLUGIN, tiny

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(make_config, data_root, tmp_path):
    out = tmp_path / "ddp"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"),
        *("-m", "zoo.train", tiny.RECIPE, "--plugin", str(PLUGIN), "--data", str(data_root), "--out", str(out)),
        *("--device", "cpu", "--workers", "0", "--no-tensorboard", "--no-progress", "epochs=2", "average_last=2"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-4000:]

    single = run(make_config("single", epochs=2, overrides=["average_last=2"]))
    distributed = load_checkpoint(out / "last.pt")
    assert distributed["config"]["world_size"] == 2 and len(distributed["rng"]) == 2
    assert distributed["global_step"] == 8
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(distributed["model"][name], value, rtol=0, atol=1e-6)
    for split, values in single.history[-1]["metrics"].items():
        for metric, value in values.items():
            assert abs(distributed["metrics"][split][metric] - value) < 1e-5

    averaged = load_checkpoint(out / "averaged.pt")
    single_averaged = load_checkpoint(single.averaged_checkpoint)
    assert averaged["averaged"] == single_averaged["averaged"] == {"epochs": [1, 2]}
    for name, value in single_averaged["model"].items():
        torch.testing.assert_close(averaged["model"][name], value, rtol=0, atol=1e-6)
    assert set(averaged["metrics"]["val"]) == set(single.averaged_metrics)
    for metric, value in single.averaged_metrics.items():
        assert abs(averaged["metrics"]["val"][metric] - value) < 1e-5
