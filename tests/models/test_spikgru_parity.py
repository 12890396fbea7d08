"""SpikGRU family against the fixtures of the original code (reference README, section SpikGRU-DVSLip).

The three distinct frontends (binary: spikgru2plus, signed: ternact, ReLU: ann) run full forwards (B=2, T=8,
real frontend, hidden 64) through `zoo.convert.from_reference`: the 18 frontend spike maps, the spikes entering
the head, every GRU layer, the per-step and time-mean logits, the spike loss and the firing rates are compared.
The other delta fixtures share the base's frontend weights and input; their heads run from its verified output.
Models run with ``reverse_backward_output=True`` to match the original's per-step layout;
`test_default_layout_keeps_the_time_mean_logits` checks the default layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.convert import from_reference
from zoo.layers.spike_record import SpikeRecord

FIXTURE_MODELS = {
    "spikgru2plus": "spikgru2plus",
    "spikgru2": "spikgru2",
    "spikgru": "spikgru",
    "spikgruplus": "spikgruplus",
    "ternact": "spikgru2plus-ternary",
    "fc": "spikgru-fc",
    "hybridann": "spikgru-hybridann",
    "ann": "lipreading-ann",
}
LOGITS_ATOL = 1e-4


def load_fixture(path: Path) -> dict:
    """The reference README's loader: delta fixtures are completed from their base."""
    fixture = torch.load(path, map_location="cpu", weights_only=True)
    if "base" in fixture:
        base = torch.load(path.parent / fixture["base"], map_location="cpu", weights_only=True)
        dropped = set(fixture["drop_keys"])
        state = {key: value for key, value in base["state_dict"].items() if key not in dropped}
        state.update(fixture["state_dict"])
        fixture["state_dict"] = state
    fixture["state_dict"] = {key: fixture["state_dict"][key] for key in fixture["state_dict_keys"]}
    return fixture


def unpack_spikes(entry: dict) -> torch.Tensor:
    spikes = np.unpackbits(entry["nonzero_bits"].numpy(), count=entry["count"]).astype("f4")
    if "negative_bits" in entry:
        spikes -= 2 * np.unpackbits(entry["negative_bits"].numpy(), count=entry["count"])
    return torch.from_numpy(spikes.reshape(entry["shape"]))


def build(config: str, fixture: dict, **overrides) -> torch.nn.Module:
    name = FIXTURE_MODELS[config]
    size = {} if name == "spikgru-fc" else {"hidden_size": fixture["config"]["gru_hidden_size"]}
    return from_reference(name, fixture["state_dict"], **size, **overrides).eval()


def our_spike_name(module_name: str) -> str:
    """Fixture name of the activations recorded by one of our SpikeRecords."""
    parts = module_name.removesuffix(".activity").split(".")
    fixed = {"stem.neuron": "layer1", "pool.neuron": "avgpool", "global_pool.neuron": "adaptavgpool"}
    if parts[0] == "frontend" and ".".join(parts[1:]) in fixed:
        return fixed[".".join(parts[1:])]
    if parts[0] == "frontend":
        block = f"{parts[1]}_{int(parts[2]) + 1}"
        return block + ".mid" if parts[3] == "neuron1" else block
    if parts[:2] == ["head", "layers"]:
        return f"gru.layer{int(parts[2]) + 1}"
    return "gru.output"


def capture_spikes(model: torch.nn.Module, events: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-step logits and every recorded layer's output, batch first [B, T, ...]."""
    captured = {}
    hooks = []
    for module_name, module in model.named_modules():
        if isinstance(module, SpikeRecord):
            name = our_spike_name(module_name)

            def hook(_module, _inputs, output, name=name):
                captured[name] = output.detach().transpose(0, 1)

            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        steps = model.forward_steps(events)
    for handle in hooks:
        handle.remove()
    return steps, captured


def reversed_backward_half(spikes: torch.Tensor) -> torch.Tensor:
    """Our forward-time layout [B, T, 2H] -> the original's (backward half in reversed time)."""
    forward_half, backward_half = spikes.chunk(2, dim=-1)
    return torch.cat([forward_half, backward_half.flip(1)], dim=-1)


@pytest.fixture
def spikgru_dir(reference_dir: Path) -> Path:
    folder = reference_dir / "spikgru"
    if not folder.is_dir():
        pytest.skip(f"SpikGRU reference fixtures not found at {folder}")
    return folder


SPIKGRU_HEADS = ("spikgru2plus", "spikgru2", "spikgru", "spikgruplus", "ternact")


@pytest.mark.parametrize("config", ["spikgru2plus", "ternact", "ann"])
def test_forward_matches_fixture(spikgru_dir: Path, config: str) -> None:
    fixture = load_fixture(spikgru_dir / f"{config}_small.fixture.pt")
    overrides = {"reverse_backward_output": True} if config in SPIKGRU_HEADS else {}
    model = build(config, fixture, **overrides)
    steps, spikes = capture_spikes(model, fixture["inputs"])
    outputs, intermediates = fixture["outputs"], fixture["intermediates"]

    spikes_file = fixture["config"]["spikes_file"]
    if spikes_file is not None:
        reference_spikes = torch.load(spikgru_dir / spikes_file, weights_only=True)
        for name in reference_spikes["order"]:
            expected = unpack_spikes(reference_spikes["tensors"][name])
            mismatches = int((spikes[name] != expected).sum())
            assert mismatches == 0, f"{config}: {mismatches} spike mismatches in {name}"
    if config == "ann":
        torch.testing.assert_close(spikes["adaptavgpool"].flatten(2), intermediates["adaptavgpool"])
    else:
        assert torch.equal(spikes["adaptavgpool"].flatten(2), intermediates["adaptavgpool"])
    if config in SPIKGRU_HEADS:
        for layer in (1, 2, 3):
            name = f"gru.layer{layer}"
            assert torch.equal(reversed_backward_half(spikes[name]), intermediates[name]), f"{config}: {name}"
    elif "gru.output" in intermediates:
        torch.testing.assert_close(spikes["gru.output"], intermediates["gru.output"], atol=1e-5, rtol=0)

    torch.testing.assert_close(steps, outputs["logits"], atol=LOGITS_ATOL, rtol=0)
    torch.testing.assert_close(steps.mean(1), outputs["logits_mean"], atol=LOGITS_ATOL, rtol=0)
    assert zoo.spike_penalty(model).item() == pytest.approx(outputs["loss_act"].item(), rel=1e-5)
    rates = torch.stack(list(zoo.firing_rates(model).values()))
    expected_rates = reference_rate_order(outputs["spike_act"])
    if model.head_kind == "gru":
        expected_rates = expected_rates[:20]
    torch.testing.assert_close(rates, expected_rates, atol=1e-5, rtol=1e-5)


def reference_rate_order(spike_act: torch.Tensor) -> torch.Tensor:
    """The original lists (output, mid) per block; our records run (mid, output)."""
    values = spike_act.tolist()
    reordered = values[:2]
    for block in range(8):
        output, mid = values[2 + 2 * block : 4 + 2 * block]
        reordered += [mid, output]
    return torch.tensor(reordered + values[18:])


@pytest.mark.parametrize("config", ["spikgru2", "spikgru", "spikgruplus", "fc", "hybridann"])
def test_head_matches_fixture_from_the_shared_frontend(spikgru_dir: Path, config: str) -> None:
    """Delta fixtures reuse the base's frontend weights and input, so the base's verified frontend output (the
    `adaptavgpool` spikes, stored in every fixture) is their head input; the heads run from it."""
    fixture = load_fixture(spikgru_dir / f"{config}_small.fixture.pt")
    base = load_fixture(spikgru_dir / fixture["base"])
    for key, value in base["state_dict"].items():
        if key.startswith("layer"):
            assert torch.equal(fixture["state_dict"][key], value), f"{config}: frontend weight {key} differs from base"
    assert torch.equal(fixture["inputs"], base["inputs"])
    intermediates, outputs = fixture["intermediates"], fixture["outputs"]
    assert torch.equal(intermediates["adaptavgpool"], base["intermediates"]["adaptavgpool"])

    model = build(config, fixture, **({"reverse_backward_output": True} if config in SPIKGRU_HEADS else {}))
    features = intermediates["adaptavgpool"].transpose(0, 1)
    with torch.no_grad():
        steps = model.forward_features(features)
        layers = [] if model.head is None else model.head(features)
    torch.testing.assert_close(steps, outputs["logits"], atol=LOGITS_ATOL, rtol=0)
    torch.testing.assert_close(steps.mean(1), outputs["logits_mean"], atol=LOGITS_ATOL, rtol=0)
    if config == "hybridann":
        torch.testing.assert_close(layers[0].transpose(0, 1), intermediates["gru.output"], atol=1e-5, rtol=0)
    for index, spikes in enumerate(layers if config in SPIKGRU_HEADS else [], start=1):
        ours = reversed_backward_half(spikes.transpose(0, 1))
        assert torch.equal(ours, intermediates[f"gru.layer{index}"]), f"{config}: gru.layer{index}"
    if config in SPIKGRU_HEADS:
        rates = [layer.activity.rate.item() for layer in model.head.layers]
        assert rates == pytest.approx(outputs["spike_act"][-3:].tolist(), abs=1e-6)


def test_default_layout_keeps_the_time_mean_logits(spikgru_dir: Path) -> None:
    """By default the backward half is in forward time order; the per-step logits change, their mean does not."""
    fixture = load_fixture(spikgru_dir / "spikgru2plus_small.fixture.pt")
    model = build("spikgru2plus", fixture)
    features = fixture["intermediates"]["adaptavgpool"].transpose(0, 1)
    with torch.no_grad():
        steps = model.forward_features(features)
        hidden = model.head(features)[-1]
    torch.testing.assert_close(steps.mean(1), fixture["outputs"]["logits_mean"], atol=LOGITS_ATOL, rtol=0)
    assert not torch.allclose(steps, fixture["outputs"]["logits"], atol=1e-3)
    original_layout = reversed_backward_half(hidden.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(
        model.readout(original_layout).transpose(0, 1), fixture["outputs"]["logits"], atol=LOGITS_ATOL, rtol=0
    )
