"""Layer activity, energy estimates and the NeuroBench static metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.analysis.activity import ActivityAccumulator
from zoo.analysis.energy import ENERGY_PRESETS, estimate_energy
from zoo.analysis.neurobench import (
    activation_sparsity,
    connection_sparsity,
    footprint_bytes,
    parameter_count,
    synaptic_operations,
    undercount,
)
from zoo.analysis.synops import ConnectionOps
from zoo.layers.spike_record import SpikeRecord, record_detail, spike_details


class _Recorded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spikes = SpikeRecord()
        self.sums = SpikeRecord(measure="density", spikes=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sums(self.spikes(x) * 2)


def _layers(batches: list[torch.Tensor]):
    model = _Recorded()
    accumulator = ActivityAccumulator(model)
    with record_detail(model, raster_neurons=2):
        for x in batches:
            model(x)
            accumulator.add(spike_details(model))
    return {layer.name: layer for layer in accumulator.layers()}


def test_signed_rates_profile_and_neuron_distribution():
    # T=2, B=2, 3 neurons; 4 events (one of them -1) over 12 entries
    x = torch.tensor([[[1.0, 0.0, -1.0], [1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    layers = _layers([x])
    spikes = layers["spikes"]
    assert (spikes.neurons, spikes.steps, spikes.nonzero) == (3, 4, 5)
    assert spikes.rate == pytest.approx(5 / 12)
    assert spikes.positive_rate == pytest.approx(4 / 12)
    assert spikes.negative_rate == pytest.approx(1 / 12)
    assert spikes.step_rates == pytest.approx([3 / 6, 2 / 6])
    assert spikes.neuron_rates.tolist() == pytest.approx([1.0, 0.0, 0.25])
    assert spikes.silent_fraction == pytest.approx(1 / 3)
    assert spikes.saturated_fraction == pytest.approx(1 / 3)
    assert spikes.raster.shape == (2, 2)  # sample 0, neurons 0 and 2
    assert spikes.raster[:, 1].tolist() == [-1.0, 0.0]
    # the density record sees 2s and -2s: the same non-zero sites
    assert layers["sums"].rate == pytest.approx(5 / 12)
    assert layers["sums"].measure == "density"


def test_batches_are_weighted_by_steps_and_profiles_by_step():
    short = torch.ones(1, 1, 2)  # T=1, B=1: rate 1
    long = torch.zeros(3, 1, 2)  # T=3, B=1: rate 0
    spikes = _layers([short, long])["spikes"]
    assert spikes.steps == 4
    assert spikes.rate == pytest.approx(1 / 4)
    assert spikes.step_rates == pytest.approx([0.5, 0.0, 0.0])  # step 0: mean of 1 and 0; later steps: long only
    assert spikes.nonzero == 2
    summary = spikes.to_dict(histogram_bins=4)
    assert sum(summary["neuron_rate_histogram"]["counts"]) == 2


def test_activation_sparsity_counts_nonzeros_over_all_layers():
    x = torch.tensor([[[1.0, 0.0, -1.0], [1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    layers = _layers([x]).values()
    assert activation_sparsity(layers) == pytest.approx(1 - 10 / 24)
    with pytest.raises(ValueError, match="at least one"):
        activation_sparsity([])


def test_energy_presets_by_hand():
    estimate = estimate_energy(effective_acs=10, effective_macs=2, dense=20, preset="fp32")
    assert estimate.effective_pj == pytest.approx(10 * 0.9 + 2 * 4.6)
    assert estimate.acs_pj == pytest.approx(9.0)
    assert estimate.dense_pj == pytest.approx(20 * 4.6)
    assert estimate.ratio == pytest.approx(92 / 18.2)
    assert estimate_energy(10, 2, 20, "fp16").effective_pj == pytest.approx(10 * 0.4 + 2 * 1.5)
    assert estimate_energy(10, 2, 20, "int8").effective_pj == pytest.approx(10 * 0.03 + 2 * 0.23)
    assert math.isinf(estimate_energy(0, 0, 5).ratio)
    assert set(ENERGY_PRESETS) == {"fp32", "fp16", "int8"}
    with pytest.raises(ValueError, match="preset"):
        estimate_energy(1, 1, 1, "fp8")
    with pytest.raises(ValueError, match=">= 0"):
        estimate_energy(-1, 0, 0)


class _Static(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)  # 8 weights (bias not counted by ConnectionSparsity), 2 biases
        self.gru = nn.GRU(2, 1)  # weights and biases counted: 3*2 + 3*1 + 3 + 3 = 15
        self.norm = nn.BatchNorm1d(3)  # 6 parameters, buffers: 2 x 3 float + 1 int64
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 0.0]]))
            self.gru.bias_hh_l0.zero_()


def test_static_metrics_by_hand():
    model = _Static()
    assert parameter_count(model) == 8 + 2 + 15 + 6
    assert footprint_bytes(model) == (8 + 2 + 15 + 6) * 4 + 6 * 4 + 8
    # zeros: 5 in the Linear weight + 3 in the GRU's bias_hh, over 8 + 15 weights
    assert connection_sparsity(model) == round(8 / 23, 4)
    with pytest.raises(ValueError, match="no Linear"):
        connection_sparsity(nn.ReLU())


def _ops(name: str, acs: float, macs: float, dense: float, visible: bool) -> ConnectionOps:
    return ConnectionOps(name, "Linear", 1, acs, macs, dense, "spikes", visible, 1, 1)


def test_neurobench_totals_and_undercount():
    connections = [_ops("a", 6, 0, 10, True), _ops("b", 0, 2, 10, True), _ops("c", 2, 0, 20, False)]
    assert synaptic_operations(connections) == {"Effective_MACs": 2, "Effective_ACs": 6, "Dense": 20}
    assert synaptic_operations(connections, "all") == {"Effective_MACs": 2, "Effective_ACs": 8, "Dense": 40}
    missed = undercount(connections)
    assert missed["effective"] == pytest.approx(2 / 10)
    assert missed["dense"] == pytest.approx(0.5)
    assert missed["unseen_connections"] == ["c"]
