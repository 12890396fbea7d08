"""raven-spiking-dvslip: SpikGRU's spiking front-end under RAVEn's Transformer (small CPU models)."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.layers.attention import RelativePositionSelfAttention
from zoo.layers.lif import LIFNeuron
from zoo.layers.spike_record import SpikeRecord
from zoo.models import spikgru
from zoo.models.raven import EncoderBlock, RAVEnEncoder, SpikingRAVEnClassifier

NAME = "raven-spiking-dvslip"
SMALL = {"dim": 32, "heads": 2, "ffn": 64, "blocks": 1}


def small(**overrides) -> SpikingRAVEnClassifier:
    torch.manual_seed(0)
    return zoo.build(NAME, **{**SMALL, **overrides})


def event_frames(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    """Random event counts in the DVS-Lip layout: +ON counts in channel 0, -OFF counts in channel 1."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((batch, steps, 2, 88, 88), 0.3), generator=generator)
    counts[:, :, 1] *= -1
    return counts


def spiking_outputs(model: torch.nn.Module, events: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output of every LIF/IF layer and the Transformer's input, from one forward."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _, __, out, name=name: seen.__setitem__(name, out.detach()))
        for name, module in model.named_modules()
        if isinstance(module, LIFNeuron)
    ]
    hooks.append(model.encoder.embed.register_forward_hook(lambda _, args, __: seen.__setitem__("embed", args[0])))
    model(events)
    for hook in hooks:
        hook.remove()
    return seen


def test_registry_entry_is_labelled_hybrid_and_reuses_both_families() -> None:
    info = zoo.model_info(NAME)
    assert info.family == "raven"
    assert "not a published model" in info.paper and "hybrid" in info.paper
    assert spikgru.CITATION in info.citation and "haliassos2023jointly" in info.citation
    assert info.inputs == spikgru.INPUTS and info.outputs == spikgru.OUTPUTS
    assert (info.config["dim"], info.config["blocks"], info.config["signed"]) == (256, 6, False)
    with torch.device("meta"):
        model = zoo.build(NAME)
    assert isinstance(model.encoder, RAVEnEncoder) and len(model.encoder.blocks) == 6
    assert all(isinstance(block, EncoderBlock) for block in model.encoder.blocks)
    assert all(isinstance(block.attn, RelativePositionSelfAttention) for block in model.encoder.blocks)
    reference = spikgru.spikgru_frontend(spikgru.NeuronSettings()).to("meta")
    assert {k: v.shape for k, v in model.encoder.frontend.trunk.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


@pytest.mark.parametrize("overrides", [{}, {"dim": 384, "heads": 6, "ffn": 1536, "blocks": 4, "num_classes": 10}])
def test_parameter_count_equals_model_info(overrides: dict) -> None:
    with torch.device("meta"):
        model = zoo.build(NAME, **overrides)
    assert sum(p.numel() for p in model.parameters()) == zoo.model_info(NAME, **overrides).num_params


def test_shapes_of_logits_and_per_step_readout() -> None:
    model = small().eval()
    events = event_frames(2, 3)
    with torch.no_grad():
        steps = model.forward_steps(events)
        logits = model(events)
    assert steps.shape == (2, 3, 100) and logits.shape == (2, 100)
    torch.testing.assert_close(logits, steps.mean(1))
    with pytest.raises(ValueError, match=r"\[B, T, 2, 88, 88\] must have size 2 where the spec fixes it"):
        model(events[:, :, :1])


@pytest.mark.parametrize("signed", [False, True])
def test_front_end_emits_binary_or_signed_spikes_into_the_transformer(signed: bool) -> None:
    model = small(signed=signed).train()
    seen = spiking_outputs(model, event_frames(2, 3))
    assert len(seen) == 19 + 1  # stem, pool IF, 16 block neurons, global-pool IF, and the embedding's input
    allowed = torch.tensor([-1.0, 0.0, 1.0] if signed else [0.0, 1.0])
    for name, spikes in seen.items():
        assert torch.isin(spikes, allowed).all(), f"{name} emits {spikes.unique()[:10]}"
    assert torch.equal(seen["embed"], seen["encoder.frontend.trunk.global_pool.neuron"].flatten(2).transpose(0, 1))
    everything = torch.cat([spikes.flatten() for spikes in seen.values()])
    assert (everything == 1).any()
    assert (everything == -1).any() == signed


def test_every_forward_starts_from_fresh_state() -> None:
    model = small().eval()
    first, second = event_frames(2, 3, seed=1), event_frames(2, 3, seed=2)
    with torch.no_grad():
        alone = model(second)
        model(first)
        after = model(second)
        single = model(second[1:])
    assert torch.equal(after, alone)
    torch.testing.assert_close(single, alone[1:])


def test_gradients_reach_the_front_end_through_the_surrogate() -> None:
    model = small().train()
    logits = model(event_frames(2, 3))
    torch.nn.functional.cross_entropy(logits, torch.tensor([3, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    frontend = model.encoder.frontend.trunk
    for parameter in (frontend.stem.conv.weight, frontend.stem.neuron.alpha, frontend.layer2[0].conv1.weight):
        assert parameter.grad.abs().sum() > 0


def test_firing_rates_spike_penalty_and_leak_clamping() -> None:
    model = small().train()
    model(event_frames(2, 3))
    rates = zoo.firing_rates(model)
    records = [name for name, module in model.named_modules() if isinstance(module, SpikeRecord)]
    assert list(rates) == records and len(rates) == 19
    assert all(0.0 <= float(rate) <= 1.0 for rate in rates.values()) and any(float(r) > 0 for r in rates.values())
    uniform = zoo.spike_penalty(model)
    penalties = [
        module.penalty for module in model.modules() if isinstance(module, SpikeRecord) and module.penalty_terms
    ]
    assert len(penalties) == 17
    torch.testing.assert_close(uniform, 0.5 * torch.stack(penalties).sum())
    assert torch.isfinite(zoo.spike_penalty(model, "synapses"))
    leak = model.encoder.frontend.trunk.stem.neuron.alpha
    with torch.no_grad():
        leak.fill_(1.5)
    model.clamp_parameters()
    assert torch.equal(leak, torch.ones_like(leak))
