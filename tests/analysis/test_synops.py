"""Synaptic operation counts against values computed by hand for small layers and known inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.analysis.synops import Projection, SynapticOperationCounter, count_projection, is_spike_tensor


def _linear() -> nn.Linear:
    """Linear 3 -> 2 whose weight columns have 1, 0 and 2 non-zero entries."""
    layer = nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, 0.0, -2.0], [0.0, 0.0, 3.0]]))
        layer.bias.fill_(7.0)  # the bias is not a synaptic operation
    return layer


def _count(model: nn.Module, x: torch.Tensor, samples: int):
    with SynapticOperationCounter(model) as counter:
        model(x)
    return {c.name: c for c in counter.connections(samples=samples)}


def test_linear_signed_spikes_are_acs():
    # rows: [1, 0, -1] -> inputs 0 and 2 active: 1 + 2 = 3 pairs; [0, 1, 1] -> inputs 1 and 2: 0 + 2 = 2 pairs
    x = torch.tensor([[[1.0, 0.0, -1.0]], [[0.0, 1.0, 1.0]]])  # [T=2, B=1, 3]
    ops = _count(_linear(), x, samples=1)[""]
    assert ops.effective_acs == 5
    assert ops.effective_macs == 0
    assert ops.dense == 2 * 3 * 2
    assert ops.input_kind == "spikes"
    assert ops.kind == "Linear" and ops.neurobench_visible
    assert (ops.weights, ops.nonzero_weights) == (6, 3)


def test_linear_real_input_is_macs_per_sample():
    # batch of 2 samples, one step each: [0.5, 0, 0] -> 1 pair; [0, 2, 0] -> 0 pairs; 1 pair in all = 0.5 per sample
    x = torch.tensor([[0.5, 0.0, 0.0], [0.0, 2.0, 0.0]])
    ops = _count(_linear(), x, samples=2)[""]
    assert ops.effective_acs == 0
    assert ops.effective_macs == 0.5
    assert ops.dense == 2 * 3 * 2 / 2
    assert ops.input_kind == "real"


def test_mixed_calls_split_between_acs_and_macs():
    layer = _linear()
    with SynapticOperationCounter(layer) as counter:
        layer(torch.tensor([[1.0, 1.0, 1.0]]))  # 1 + 0 + 2 = 3 ACs
        layer(torch.tensor([[2.0, 0.0, 0.0]]))  # 1 MAC
    (ops,) = counter.connections(samples=1)
    assert (ops.effective_acs, ops.effective_macs, ops.dense, ops.calls) == (3, 1, 12, 2)
    assert ops.input_kind == "mixed"


def test_conv2d_padding_counts_nothing():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0, 0, 0, 0] = 0.0  # one zero tap
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # one spike in the centre reaches all 9 outputs, through 8 non-zero taps
    ops = _count(conv, x, samples=1)[""]
    # dense: corners see 4 in-bounds taps, edges 6, the centre 9: 4*4 + 4*6 + 9
    assert ops.dense == 49
    assert ops.effective_acs == 8
    assert ops.effective_macs == 0


def test_strided_conv1d_and_groups_match_a_direct_count():
    torch.manual_seed(0)
    conv = nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)
    x = (torch.rand(2, 4, 9) < 0.3).float()
    ops = _count(conv, x, samples=2)[""]
    # direct count: for every output position, in-bounds taps whose input and weight are both non-zero
    expected = dense = 0
    for b in range(2):
        for out in range(6):
            group = out // 3
            for position in range(5):
                for k in range(3):
                    source = 2 * position - 1 + k
                    if not 0 <= source < 9:
                        continue
                    for c in range(2):
                        dense += 1
                        expected += bool(x[b, 2 * group + c, source] != 0) and bool(conv.weight[out, c, k] != 0)
    assert ops.effective_acs == expected / 2
    assert ops.dense == dense / 2


class _FunctionalModule(nn.Module):
    """y_t = W x_t + U y_{t-1}, with both products functional (declared through the protocol)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
        self.u = nn.Parameter(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drive = x @ self.w.T
        outputs, y = [], torch.zeros_like(drive[0])
        for t in range(x.shape[0]):
            y = (drive[t] + y @ self.u.T > 0.5).float()
            outputs.append(y)
        return torch.stack(outputs)

    def functional_projections(self, args, kwargs, output):
        previous = torch.cat([torch.zeros_like(output[:1]), output[:-1]])
        return [Projection("input", args[0], self.w), Projection("recurrent", previous, self.u)]


def test_functional_projection_protocol():
    model = _FunctionalModule()
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]])  # [T=3, B=1, 2]
    counts = _count(model, x, samples=1)
    output = model(x)  # y_0 = [1, 0], y_1 = [0, 1], y_2 = [1, 1]
    assert output[:, 0].tolist() == [[1, 0], [0, 1], [1, 1]]
    # input: column fan-outs (1, 2); active inputs x0 at t=0 and x1 at t=2: 1 + 2
    assert counts["input"].effective_acs == 3
    # recurrent inputs y_{-1}=0, y_0=[1,0], y_1=[0,1]; column fan-outs of U (1, 2): 0 + 1 + 2
    assert counts["recurrent"].effective_acs == 3
    assert counts["recurrent"].dense == 3 * 4
    assert counts["recurrent"].kind == "functional" and not counts["recurrent"].neurobench_visible


def test_gru_counts_input_and_recurrent_products_per_layer_and_direction():
    torch.manual_seed(0)
    gru = nn.GRU(2, 3, num_layers=2, bidirectional=True)
    x = torch.randn(4, 1, 2)  # T=4, B=1: every input and hidden entry is non-zero
    counts = _count(gru, x, samples=1)
    assert len(counts) == 8
    assert counts["weight_ih_l0"].dense == 4 * 2 * 9
    assert counts["weight_ih_l1_reverse"].dense == 4 * 6 * 9  # layer 1 reads both directions (2 * 3 features)
    assert counts["weight_hh_l0"].dense == 4 * 3 * 9
    # the first step of each direction starts from h = 0: 3 of 4 steps do recurrent work
    assert counts["weight_hh_l0"].effective_macs == 3 * 3 * 9
    assert counts["weight_hh_l0_reverse"].effective_macs == 3 * 3 * 9
    assert counts["weight_ih_l1"].effective_macs == 4 * 6 * 9
    assert all(c.kind == "GRU" and not c.neurobench_visible for c in counts.values())


def test_gru_recomputed_layers_match_the_module():
    torch.manual_seed(1)
    gru = nn.GRU(3, 4, num_layers=2, batch_first=True).eval()
    x = torch.randn(2, 5, 3)
    zero_hidden = torch.zeros(2, 2, 4)
    zero_hidden[1, 0, 0] = 1.0  # layer 1, sample 0 starts with one non-zero unit
    with SynapticOperationCounter(gru) as counter:
        output, _ = gru(x, zero_hidden)
    counts = {c.name: c for c in counter.connections(samples=2)}
    # layer 1 recurrent input: initial states (1 non-zero entry in sample 0, none in sample 1), then outputs of
    # layer 1 at steps 0..3 (all non-zero): 1 * 12 + 2 * 4 * 4 * 12 pairs over 2 samples
    assert counts["weight_hh_l1"].effective_macs == (1 * 12 + 2 * 4 * 4 * 12) / 2
    assert bool((output != 0).all())


def test_spike_test_and_errors():
    assert bool(is_spike_tensor(torch.tensor([-1.0, 0.0, 1.0])))
    assert not bool(is_spike_tensor(torch.tensor([2.0, 0.0])))
    with pytest.raises(ValueError, match="does not match weight"):
        count_projection(Projection("bad", torch.ones(2, 3), torch.ones(4, 2)))
    with pytest.raises(ValueError, match="samples must be >= 1"):
        SynapticOperationCounter(nn.Linear(1, 1)).connections(samples=0)
