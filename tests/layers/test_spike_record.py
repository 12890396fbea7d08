"""SpikeRecord, firing_rates, spike_penalty and the report detail on hand-computed inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo.layers.spike_record import SpikeRecord, averaged_over_calls, record_detail, spike_details

# [T=3, B=2, 2 neurons] signed spikes; sample 1 is padding at t = 2 in the masked tests.
SPIKES = torch.tensor(
    [
        [[1.0, 0.0], [-1.0, 1.0]],
        [[1.0, -1.0], [0.0, 0.0]],
        [[0.0, 1.0], [1.0, 1.0]],
    ]
)
VALID = torch.tensor([[True, True], [True, True], [True, False]])


def test_rates_are_device_tensors_collected_by_name() -> None:
    model = nn.Sequential(nn.Identity(), SpikeRecord(), nn.Sequential(SpikeRecord()))
    assert zoo.firing_rates(model) == {}
    spikes = SPIKES.clone().requires_grad_()
    model(spikes)
    rates = zoo.firing_rates(model)
    assert set(rates) == {"1", "2.0"}
    assert rates["1"].dim() == 0 and rates["1"].item() == pytest.approx(8 / 12) and not rates["1"].requires_grad
    assert zoo.firing_rates(model, detach=False)["1"].requires_grad


def test_density_counts_active_sites_not_spikes() -> None:
    record = SpikeRecord(measure="density", penalty_terms=1, spikes=False)
    counts = torch.tensor([[[0.0, 3.0, 1.0, 0.0]]])
    record(counts)
    assert record.rate.item() == 0.5
    assert record.penalty.item() == (9 + 1) / 4


def test_masked_rate_leaves_padding_out() -> None:
    record = SpikeRecord()
    record(SPIKES, VALID)
    # per-neuron means over the 5 valid (t, b): 3/5 for both neurons; the layer rate is their mean
    assert record.rate.item() == pytest.approx(0.6)


def test_penalty_term_value_and_gradient() -> None:
    for spikes in (True, False):
        record = SpikeRecord(penalty_terms=1, spikes=spikes)
        x = SPIKES.clone().requires_grad_()
        record(x)
        (grad,) = torch.autograd.grad(record.penalty, x)
        assert record.penalty.item() == pytest.approx(8 / 12)
        torch.testing.assert_close(grad, 2 * SPIKES / 12)
    real = SpikeRecord(penalty_terms=1, spikes=False)
    real(torch.tensor([[[0.5, -2.0]]]), torch.tensor([[True]]))
    assert real.penalty.item() == pytest.approx((0.25 + 4.0) / 2)


def test_spike_penalty_weightings_and_errors() -> None:
    first, second, rate_only = SpikeRecord(penalty_terms=1), SpikeRecord(penalty_terms=2), SpikeRecord()
    model = nn.ModuleList([first, second, rate_only])
    with pytest.raises(RuntimeError, match="forward pass first"):
        zoo.spike_penalty(model)
    first(torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]))  # mean s^2 = 1/4
    second(torch.tensor([[[1.0, -1.0]]]))  # mean s^2 = 1
    rate_only(torch.ones(1, 1, 3))
    assert zoo.spike_penalty(model).item() == 0.5 * (0.25 + 2 * 1.0)
    with pytest.raises(ValueError, match="without a synapse count"):
        zoo.spike_penalty(model, "synapses")
    first.synapses, second.synapses = 10.0, 40.0
    # weights: penalty_terms * synapses = 10 and 80, normalised by their mean per term (90 / 3 = 30)
    expected = 0.5 * (10 / 30 * 0.25 + 80 / 30 * 1.0)
    assert zoo.spike_penalty(model, "synapses").item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="weighting"):
        zoo.spike_penalty(model, "fanin")
    with pytest.raises(RuntimeError, match="no spiking layer with a penalty term"):
        zoo.spike_penalty(nn.Sequential(SpikeRecord(), nn.Linear(2, 2)))


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1), (1, 3)])
def test_calls_averaged_over_a_single_step_loop_equal_one_call_on_the_sequence(chunks: tuple[int, ...]) -> None:
    """A loop over time chunks inside `averaged_over_calls` records what one call on all steps records: the same
    rate and penalty, gradient included; steps of unequal size are weighted by their elements."""
    torch.manual_seed(1)
    x = torch.randint(-1, 2, (4, 3, 5)).float().requires_grad_()
    whole = SpikeRecord(penalty_terms=1, spikes=True)
    whole(x)
    (expected_gradient,) = torch.autograd.grad(whole.penalty, x)
    looped = SpikeRecord(penalty_terms=1, spikes=True)
    with averaged_over_calls(looped):
        for part in x.split(list(chunks)):
            looped(part)
    torch.testing.assert_close(looped.rate, whole.rate, rtol=0, atol=1e-7)
    torch.testing.assert_close(looped.penalty, whole.penalty, rtol=0, atol=1e-7)
    (gradient,) = torch.autograd.grad(looped.penalty, x)
    torch.testing.assert_close(gradient, expected_gradient, rtol=0, atol=1e-9)
    looped(x[:1])  # outside the block: one call, its own rate
    torch.testing.assert_close(looped.rate, x[:1].abs().mean())


def test_detail_is_off_by_default_and_recorded_inside_the_block() -> None:
    model = nn.Sequential(SpikeRecord(), SpikeRecord(measure="density", spikes=False))
    model(SPIKES)
    assert spike_details(model) == {}
    with record_detail(model, raster_neurons=1):
        model(SPIKES)
    assert all(not record.detail and record.raster_neurons == 16 for record in model)
    details = spike_details(model)
    assert set(details) == {"0", "1"}
    model(SPIKES)
    assert spike_details(model) == {}, "a forward without detail leaves no stale detail"


def test_detail_values_by_hand() -> None:
    record = SpikeRecord()
    with record_detail(record, raster_neurons=2):
        record(SPIKES)
    detail = spike_details(record)[""]
    assert detail.positive_rate.item() == pytest.approx(6 / 12)
    assert detail.negative_rate.item() == pytest.approx(2 / 12)
    torch.testing.assert_close(detail.step_rates, torch.tensor([3 / 4, 2 / 4, 3 / 4]))
    torch.testing.assert_close(detail.neuron_rates, torch.tensor([4 / 6, 4 / 6]))
    assert detail.neurons == 2 and detail.steps.item() == 6
    torch.testing.assert_close(detail.raster, SPIKES[:, 0])
    assert detail.raster_neurons.tolist() == [0, 1]
    assert detail.silent_fraction().item() == 0 and detail.saturated_fraction().item() == 0


def test_masked_detail_by_hand() -> None:
    record = SpikeRecord()
    with record_detail(record):
        record(SPIKES, VALID)
    detail = record.last_detail
    assert detail.steps.item() == 5
    torch.testing.assert_close(detail.step_rates, torch.tensor([3 / 4, 2 / 4, 1 / 2]))
    torch.testing.assert_close(detail.neuron_rates, torch.tensor([3 / 5, 3 / 5]))
    assert detail.positive_rate.item() == pytest.approx(2 / 5)
    assert detail.negative_rate.item() == pytest.approx(1 / 5)
    all_padding = torch.tensor([[True, True], [True, True], [False, False]])
    record.detail = True
    record(SPIKES, all_padding)
    assert torch.isnan(record.last_detail.step_rates[2]) and not torch.isnan(record.last_detail.step_rates[:2]).any()


def test_silent_and_saturated_neurons_and_raster_sampling() -> None:
    x = torch.zeros(4, 3, 2, 5)
    x[:, :, 0, 0] = 1.0  # fires at every step: saturated
    x[:2, :, 1, 4] = -1.0  # half the steps
    record = SpikeRecord()
    with record_detail(record, raster_neurons=3):
        record(x)
    detail = record.last_detail
    assert detail.neuron_rates.shape == (2, 5) and detail.neurons == 10
    assert detail.silent_fraction().item() == pytest.approx(8 / 10)
    assert detail.saturated_fraction().item() == pytest.approx(1 / 10)
    assert detail.raster_neurons.tolist() == [0, 4, 9] and detail.raster.shape == (4, 3)
    torch.testing.assert_close(detail.raster, x[:, 0].flatten(1)[:, [0, 4, 9]])
    real = SpikeRecord(spikes=False)
    with record_detail(real):
        real(torch.rand(2, 2, 3))
    with pytest.raises(ValueError, match="real-valued"):
        real.last_detail.saturated_fraction()


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="measure must be 'rate' or 'density', got 'mean'"):
        SpikeRecord(measure="mean")
    with pytest.raises(ValueError, match="penalty_terms must be >= 0"):
        SpikeRecord(penalty_terms=-1)
    with pytest.raises(ValueError, match="raster_neurons must be >= 1"), record_detail(SpikeRecord(), 0):
        pass


@pytest.mark.cuda
def test_recording_and_detail_need_no_host_sync() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    record = SpikeRecord(penalty_terms=1)
    x, valid = SPIKES.cuda(), VALID.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with record_detail(record):
            record(x, valid)
        rates = zoo.firing_rates(record)
        penalty = zoo.spike_penalty(record)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert rates[""].device.type == "cuda" and penalty.device.type == "cuda"
    assert record.last_detail.neuron_rates.device.type == "cuda"
