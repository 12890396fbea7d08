"""SpikGRU family: registry entries, shapes, training behaviour, options and helpers (small CPU models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.convert import convert_state_dict
from zoo.layers.leaky_integrator import leaky_integrate
from zoo.layers.lif import LIFNeuron, NeuronSettings

MODELS = [
    "spikgru2plus",
    "spikgru2",
    "spikgru",
    "spikgruplus",
    "spikgru2plus-ternary",
    "spikgru-fc",
    "spikgru-hybridann",
    "lipreading-ann",
]
MANIFESTS = {
    "spikgru2plus": "spikgru2plus",
    "spikgru2": "spikgru2",
    "spikgru": "spikgru",
    "spikgruplus": "spikgruplus",
    "spikgru2plus-ternary": "ternact",
    "spikgru-fc": "fc",
    "spikgru-hybridann": "hybridann",
    "lipreading-ann": "ann",
}
REFERENCE_PARAMS = {  # reference README, SpikGRU manifest table (measured on the original models)
    "spikgru2plus": 58_623_908,
    "spikgru2": 58_623_908,
    "spikgru": 42_889_124,
    "spikgruplus": 42_889_124,
    "spikgru2plus-ternary": 58_623_908,
    "spikgru-fc": 11_253_868,
    "spikgru-hybridann": 58_630_052,
    "lipreading-ann": 58_621_348,
}
RATE_COUNTS = {"spikgru-fc": 19, "spikgru-hybridann": 20, "lipreading-ann": 20}


def small(name: str, **overrides) -> torch.nn.Module:
    size = {} if name == "spikgru-fc" else {"hidden_size": 8}
    return zoo.build(name, **size, **overrides)


def event_frames(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Random event counts in the DVS-Lip layout: +ON counts in channel 0, -OFF counts in channel 1."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((batch, steps, 2, 88, 88), 0.3), generator=generator)
    counts[:, :, 1] *= -1
    return counts


def test_all_models_registered_with_reference_parameter_counts() -> None:
    assert set(MODELS) <= set(zoo.list_models())
    for name in MODELS:
        info = zoo.model_info(name)
        assert info.num_params == REFERENCE_PARAMS[name], name
        assert info.family == "spikgru"
        assert info.inputs["events"].shape == ("B", "T", 2, 88, 88)


def test_state_dict_shapes_match_reference_manifests(reference_dir: Path) -> None:
    for name, manifest in MANIFESTS.items():
        listing = json.loads((reference_dir / "spikgru" / f"{manifest}.json").read_text())
        reference = {
            key: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
            for key, shape, dtype in listing["state_dict"]
        }
        converted = convert_state_dict(name, reference)
        with torch.device("meta"):
            ours = zoo.build(name).state_dict()
        assert sorted(converted) == sorted(ours), name
        for key, value in ours.items():
            assert converted[key].shape == value.shape, f"{name}: {key}"


def test_converter_rejects_a_checkpoint_of_another_variant(reference_dir: Path) -> None:
    listing = json.loads((reference_dir / "spikgru" / "spikgru2plus.json").read_text())
    two_gates = {key: torch.empty(shape, device="meta") for key, shape, _ in listing["state_dict"]}
    with pytest.raises(KeyError, match="wr.weight"):
        convert_state_dict("spikgru", two_gates)
    one_gate = {key: value for key, value in two_gates.items() if ".wr." not in key and ".ur." not in key}
    with pytest.raises(KeyError, match="lacks 'gru.grulayer1.wr.weight'"):
        convert_state_dict("spikgru2plus", one_gate)


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_backward_on_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = small(name).train()
    events = event_frames(batch=1, steps=4)
    logits = model(events)
    assert logits.shape == (1, 100)
    rates = zoo.firing_rates(model)
    assert len(rates) == RATE_COUNTS.get(name, 22)
    assert all(rate.dim() == 0 and rate.device == events.device for rate in rates.values())
    F.cross_entropy(logits, torch.tensor([3])).backward()
    stem = model.frontend.stem.conv.weight.grad
    assert stem is not None and torch.isfinite(stem).all() and stem.abs().sum() > 0
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name


def test_overrides_change_the_head() -> None:
    model = small("spikgru2plus", num_layers=2, bidirectional=False, num_classes=5)
    assert len(model.head.layers) == 2 and len(model.head.layers[0].directions) == 1
    with torch.no_grad():
        assert model(event_frames(1, 2)).shape == (1, 5)
    assert model.head.layers[0].directions[0].recurrent_weight.shape == (24, 8)
    assert small("spikgru").head.layers[0].directions[0].recurrent_weight.shape == (16, 8)


def test_wrong_input_shape_is_rejected() -> None:
    model = small("spikgru2plus")
    with pytest.raises(ValueError, match=r"'events' \[B, T, 2, 88, 88\] must have size 88 .* \(1, 2, 2, 96, 96\)"):
        model(torch.zeros(1, 2, 2, 96, 96))


def test_clamp_parameters_clamps_every_leak_but_the_fc_beta_by_default() -> None:
    model = small("spikgru2plus")
    leaks = [p for n, p in model.named_parameters() if n.endswith("alpha")]
    assert len(leaks) == 1 + 16 + 6
    with torch.no_grad():
        for leak in leaks:
            leak.uniform_(-1.0, 2.0)
    model.clamp_parameters()
    assert all(leak.min() >= 0 and leak.max() <= 1 for leak in leaks)

    for clamp_beta in (False, True):
        fc = zoo.build("spikgru-fc", clamp_readout_beta=clamp_beta)
        with torch.no_grad():
            fc.readout.alpha.fill_(1.5)
            fc.readout.beta.fill_(1.5)
        fc.clamp_parameters()
        assert fc.readout.alpha.max() == 1.0
        assert fc.readout.beta.max() == (1.0 if clamp_beta else 1.5)


@pytest.mark.parametrize("double_dropout", [True, False])
def test_fc_model_dropout_is_applied_twice_by_default(double_dropout: bool) -> None:
    torch.manual_seed(1)
    model = zoo.build("spikgru-fc", double_dropout=double_dropout).train()
    seen = {}
    model.readout.register_forward_pre_hook(lambda _module, inputs: seen.update(readout=inputs[0]))
    features = torch.ones(3, 2, 512)
    model.forward_features(features)
    assert set(seen["readout"].unique().tolist()) == ({0.0, 4.0} if double_dropout else {0.0, 2.0})
    kept = (seen["readout"] != 0).float().mean().item()
    assert kept == pytest.approx(0.25 if double_dropout else 0.5, abs=0.05)


def test_spike_loss_weightings() -> None:
    torch.manual_seed(2)
    model = small("spikgru2plus").eval()
    model(event_frames(1, 4))
    records = [m for m in model.modules() if getattr(m, "penalty_terms", 0)]
    assert len(records) == 20
    rates = torch.stack([record.rate for record in records])
    assert zoo.spike_penalty(model).item() == pytest.approx(0.5 * rates.sum().item(), rel=1e-6)
    synapses = torch.tensor([record.synapses for record in records], dtype=torch.float64)
    assert model.frontend.stem.neuron.activity.synapses == 64 * 22 * 22 * 9
    assert model.frontend.layer2[0].neuron1.activity.synapses == 64 * 22 * 22 * 64 * 9
    assert model.head.layers[2].activity.synapses == 16 * (24 + 100)
    expected = 0.5 * (synapses / synapses.mean() * rates.double()).sum()
    assert zoo.spike_penalty(model, "synapses").item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="weighting"):
        zoo.spike_penalty(model, "fanin")
    zoo.spike_penalty(model, "synapses").backward()
    assert model.frontend.stem.conv.weight.grad.abs().sum() > 0


def test_spike_loss_term_has_the_gradient_of_mean_square_spikes() -> None:
    torch.manual_seed(3)
    for signed in (False, True):
        neuron = LIFNeuron(4, NeuronSettings(signed=signed))
        current = (2 * torch.randn(5, 2, 4, 3, 3)).requires_grad_()
        spikes = neuron(current)
        (term_grad,) = torch.autograd.grad(neuron.activity.penalty, current, retain_graph=True)
        (direct_grad,) = torch.autograd.grad(spikes.square().mean(), current)
        assert neuron.activity.penalty.item() == spikes.square().mean().item()
        torch.testing.assert_close(term_grad, direct_grad)


def test_leaky_integrate_equals_the_recursion() -> None:
    torch.manual_seed(4)
    drive = torch.randn(9, 3, 5, dtype=torch.float64, requires_grad=True)
    decay = torch.tensor([0.0, 0.5, 0.9, 1.1, -0.7], dtype=torch.float64, requires_grad=True)
    state = torch.zeros(3, 5, dtype=torch.float64)
    expected = []
    for step in drive:
        state = decay * state + step
        expected.append(state)
    expected = torch.stack(expected)
    result = leaky_integrate(drive, decay)
    torch.testing.assert_close(result, expected)
    weights = torch.randn_like(result)
    grads = torch.autograd.grad((result * weights).sum(), (drive, decay))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (drive, decay))
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)
    with pytest.raises(ValueError, match="decay must be"):
        leaky_integrate(drive, decay[:3])


@pytest.mark.cuda
def test_firing_rates_and_spike_loss_need_no_host_sync() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = small("spikgru2plus").cuda().eval()
    events = event_frames(1, 2).cuda()
    with torch.no_grad():
        model(events)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            model(events)
            rates = zoo.firing_rates(model)
            loss = zoo.spike_penalty(model)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    values = torch.stack([*rates.values(), loss]).tolist()
    assert len(values) == 23 and all(value >= 0 for value in values)


@pytest.mark.parametrize(
    ("name", "option", "value", "expected"),
    [
        ("spikgru2plus", "hidden_size", 0, "a value >= 1"),
        ("spikgru-hybridann", "hidden_size", 0, "a value >= 1"),
        ("spikgru", "num_layers", 0, "a value >= 1"),
        ("spikgru-fc", "num_classes", 0, "a value >= 1"),
        ("lipreading-ann", "layer_dropout", 1.5, r"a value in \[0, 1\)"),
        ("spikgru2plus", "threshold", -1.0, "a value > 0"),
        ("spikgru-fc", "gamma", 0.0, "a value > 0"),
    ],
)
def test_impossible_configurations_name_the_option(name: str, option: str, value: float, expected: str) -> None:
    with pytest.raises(ValueError, match=rf"SpikGRUNet: option '{option}' expects {expected}, got {value}"):
        zoo.build(name, **{option: value})
