"""The functional projections SpikGRU and sparch declare, counted against a step-by-step count from their spikes."""

from __future__ import annotations

import torch

import zoo
from zoo.analysis.synops import SynapticOperationCounter
from zoo.models.spikgru import SpikGRULayer


def _pairs(previous: torch.Tensor, weight: torch.Tensor) -> int:
    """Sum over every (step, sample, input unit) that is non-zero of the non-zero weights leaving that unit."""
    fan_out = (weight != 0).sum(0)
    total = 0
    for t in range(previous.shape[0]):
        for b in range(previous.shape[1]):
            for j in range(previous.shape[2]):
                if previous[t, b, j] != 0:
                    total += int(fan_out[j])
    return total


def test_spikgru_hoisted_and_recurrent_products_both_directions():
    torch.manual_seed(0)
    layer = SpikGRULayer(3, 4, bidirectional=True, input_dropout=0.0, gates=2, signed=True, threshold=0.3, gamma=10.0)
    with torch.no_grad():
        for direction in layer.directions:
            direction.input_weight.mul_(4.0)
            direction.recurrent_weight[:, 1] = 0.0  # unit 1 drives nothing through U
    x = torch.randn(5, 2, 3)
    with torch.no_grad(), SynapticOperationCounter(layer) as counter:
        output = layer(x)
    ops = {c.name: c for c in counter.connections(samples=2)}
    forward, backward = output[..., :4], output[..., 4:]
    assert bool((forward != 0).any()) and bool((forward == -1).any())  # signed spikes reach the recurrence
    zero = torch.zeros_like(forward[:1])
    expected = {
        "directions.0.recurrent": _pairs(torch.cat([zero, forward[:-1]]), layer.directions[0].recurrent_weight),
        "directions.1.recurrent": _pairs(torch.cat([backward[1:], zero]), layer.directions[1].recurrent_weight),
        "directions.0.input": _pairs(x, layer.directions[0].input_weight),
    }
    for name, pairs in expected.items():
        assert ops[name].effective_acs + ops[name].effective_macs == pairs / 2, name
    assert ops["directions.0.recurrent"].input_kind == "spikes"
    assert ops["directions.0.input"].input_kind == "real"
    assert ops["directions.0.recurrent"].dense == 5 * 12 * 4  # T * 3H * H per sample
    assert not ops["directions.0.recurrent"].neurobench_visible


def test_sparch_recurrent_product_bidirectional_with_lengths():
    torch.manual_seed(0)
    model = zoo.build(
        "sparch-rlif", input_size=6, num_classes=3, hidden_size=5, num_hidden_layers=1, bidirectional=True,
        initial_state="zeros", normalization="none",
    ).eval()  # fmt: skip
    with torch.no_grad():
        model.layers[0].input.weight.mul_(8.0)
    x = (torch.rand(2, 7, 6) < 0.5).float()
    lengths = torch.tensor([7, 4])
    with torch.no_grad(), SynapticOperationCounter(model) as counter:
        model(x, lengths)
    ops = {c.name: c for c in counter.connections(samples=2)}
    layer = model.layers[0]
    # recompute the layer's spikes, and put each direction in the order it ran (the backward one reversed in length)
    with torch.no_grad():
        output = layer(x.transpose(0, 1), torch.arange(7).unsqueeze(1) < lengths.unsqueeze(0))
    forward, backward = output[..., :5], output[..., 5:]
    reversed_backward = torch.stack(
        [torch.cat([backward[:n, b].flip(0), backward[n:, b]]) for b, n in enumerate([7, 4])], 1
    )
    assert bool((forward != 0).any())
    ran = torch.cat([forward, reversed_backward], dim=1)  # [T, 2B, H]
    weight = layer.recurrent_matrix().T
    assert ops["layers.0.recurrent"].effective_acs == _pairs(ran[:-1], weight) / 2
    assert ops["layers.0.recurrent"].dense == 6 * 4 * 25 / 2  # (T - 1) steps x 2B rows x H x H, per sample
    assert ops["layers.0.recurrent_initial_state"].effective_acs == 0  # zero initial spikes
    assert ops["layers.0.recurrent_initial_state"].dense == 4 * 25 / 2


def test_sparch_random_initial_state_is_a_real_valued_product():
    model = zoo.build("sparch-rlif", input_size=6, num_classes=3, hidden_size=5, num_hidden_layers=1).eval()
    with torch.no_grad(), SynapticOperationCounter(model) as counter:
        model(torch.zeros(2, 3, 6))
    ops = {c.name: c for c in counter.connections(samples=2)}
    nonzero = int((model.layers[0].recurrent_matrix() != 0).sum())
    assert ops["layers.0.recurrent_initial_state"].effective_macs == nonzero  # every initial unit drives its weights
    assert ops["layers.0.recurrent_initial_state"].input_kind == "real"
