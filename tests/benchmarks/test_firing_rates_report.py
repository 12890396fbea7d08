"""benchmarks.firing_rates end to end on a small sparch model: generated input, a checkpoint, and a dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zoo
from benchmarks import firing_rates
from zoo.datasets.shd import write_spike_file


def _report(folder, name):
    (run,) = folder.glob("firing_rates_cpu_*")
    return json.loads((run / f"{name}.json").read_text()), run


def test_generated_input_report(tmp_path):
    args = ["--models", "sparch-rlif", "--quick", "--set", "initial_state=zeros", "--out", str(tmp_path)]
    assert firing_rates.main(args) == 0
    report, run = _report(tmp_path, "sparch-rlif")
    assert report["input"]["kind"] == "generated"
    assert [layer["name"] for layer in report["layers"]] == ["layers.0.firing", "layers.1.firing"]
    assert all(layer["neurons"] == 128 and layer["steps"] == 2 * 16 for layer in report["layers"])

    # the recorded rates agree with zoo.firing_rates after a forward of the same generated input
    model = zoo.build("sparch-rlif", initial_state="zeros").eval()
    inputs = firing_rates.make_inputs("sparch-rlif", None, True, torch.device("cpu"), limits=firing_rates.QUICK_LIMITS)
    with torch.no_grad():
        model(**inputs)
    expected = {name: rate.item() for name, rate in zoo.firing_rates(model).items()}
    assert {layer["name"]: layer["rate"] for layer in report["layers"]} == pytest.approx(expected)

    # totals are the sums over connections; NeuroBench's view leaves out exactly the unseen connections
    connections = report["connections"]
    assert report["synaptic_operations_all"]["Dense"] == pytest.approx(sum(c["dense"] for c in connections))
    seen = report["neurobench"]["SynapticOperations"]
    assert seen["Dense"] == pytest.approx(sum(c["dense"] for c in connections if c["neurobench_visible"]))
    first = next(c for c in connections if c["name"] == "layers.0.input")
    assert first["dense"] == 16 * 700 * 128  # T * F * H per sample
    energy = report["energy_estimate_pj"]["fp32"]
    ops = report["synaptic_operations_all"]
    assert energy["effective"] == pytest.approx(0.9 * ops["Effective_ACs"] + 4.6 * ops["Effective_MACs"])
    assert (run / "sparch-rlif.png").stat().st_size > 0
    page = (run / "sparch-rlif.md").read_text()
    assert "![sparch-rlif](sparch-rlif.png)" in page and "**generated**" in page and "estimate" in page
    assert "sparch-rlif" in (run / "index.md").read_text()


def test_checkpoint_and_dataset_input(tmp_path):
    model = zoo.build("sparch-lif")
    with torch.no_grad():
        model.readout.input.weight.zero_()
    checkpoint = tmp_path / "weights.pt"
    torch.save(model.state_dict(), checkpoint)
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0.0, 1.0, 40)) for _ in range(3)]
    units = [rng.integers(0, 700, 40) for _ in range(3)]
    root = tmp_path / "shd"
    root.mkdir()
    write_spike_file(root / "shd_test.h5", times, units, np.array([0, 1, 2]), class_names=[str(k) for k in range(20)])
    args = [
        "--models", "sparch-lif", "--checkpoint", str(checkpoint), "--data", str(root), "--recipe", "sparch-shd",
        "--batch-size", "2", "--max-batches", "2", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert firing_rates.main(args) == 0
    report, _ = _report(tmp_path / "out", "sparch-lif")
    assert report["input"]["kind"] == "dataset" and str(checkpoint) in report["input"]["weights"]
    assert report["samples"] == 3
    readout = next(c for c in report["connections"] if c["name"] == "readout.input")
    assert readout["nonzero_weights"] == 0 and readout["effective_acs"] == readout["effective_macs"] == 0
    # SHD input: spike counts per bin, so the first projection does accumulates only where counts are 0/1
    assert report["layers"][0]["steps"] == 3 * 100
