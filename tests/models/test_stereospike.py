"""StereoSpike family: parameter counts and keys of the reference listings, bit-exact parity with the paper-v2 fixture,
derived sizes, multi-window inputs, firing rates and surrogate wiring."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

import zoo
from zoo.convert import convert_state_dict, from_reference

LISTINGS = {
    "paper_v2": ("stereospike", {}),
    "matt_plif_binocular": ("stereospike", {"neuron_kind": "plif", "sew_neuron": "plif", "gain": 10.0}),
    "monocular_plif": ("stereospike-monocular", {}),
    "monocular_default": ("stereospike-monocular", {"neuron_kind": "lif", "tau": 10.0, "gain": 1.0}),
    "equivalent_ann_sigmoid": ("stereospike-ann", {}),
}
SPIKE_DIGESTS = ["spk_rconv", "spk_add4", "spk_add3", "spk_add2", "spk_add1"]
SMALL = {"widths": (4, 8, 8, 8, 8)}


@pytest.fixture(scope="module")
def stereo_dir(reference_dir: Path) -> Path:
    return reference_dir / "stereospike"


def _meta_state(name: str, overrides: dict) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return zoo.build(name, **overrides).state_dict()


@pytest.mark.parametrize("config", sorted(LISTINGS))
def test_reference_listing_params_and_keys(config, stereo_dir):
    """Every listed reference config converts key-for-key and shape-for-shape onto our model."""
    listing = json.loads((stereo_dir / f"{config}.json").read_text())
    name, overrides = LISTINGS[config]
    ours = _meta_state(name, overrides)
    with torch.device("meta"):
        model = zoo.build(name, **overrides)
    assert sum(p.numel() for p in model.parameters()) == listing["param_count_total"]
    reference = {key: torch.empty(shape, device="meta") for key, shape, _ in listing["state_dict"]}
    converted = convert_state_dict(name, reference, **overrides)
    assert set(converted) == set(ours)
    for key, value in converted.items():
        assert value.shape == ours[key].shape, key


def test_default_parameter_counts_match_reference_index(stereo_dir):
    index = json.loads((stereo_dir / "index.json").read_text())["configs"]
    assert zoo.model_info("stereospike").num_params == index["paper_v2"]["param_count_total"] == 18_148_708
    assert zoo.model_info("stereospike-monocular").num_params == index["monocular_plif"]["param_count_total"]
    assert zoo.model_info("stereospike-ann").num_params == index["equivalent_ann_sigmoid"]["param_count_total"]


def test_converter_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unexpected reference key"):
        convert_state_dict("stereospike", {"Ineurons.v": torch.zeros(1)})


@pytest.fixture(scope="module")
def paper_v2_run(stereo_dir):
    path = stereo_dir / "paper_v2.fixture.pt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    fixture = torch.load(path, weights_only=True)
    model = from_reference("stereospike", fixture["state_dict"]).eval()
    with torch.no_grad():
        depths, spikes = model(fixture["inputs"]["x"], return_spikes=True)
    return fixture, model, depths, spikes


def test_paper_v2_depths_bit_exact(paper_v2_run):
    fixture, _, depths, _ = paper_v2_run
    assert depths.shape == (1, 4, 260, 346)
    for channel, reference in enumerate(["depth4", "depth3", "depth2", "depth1"]):
        assert torch.equal(depths[:, channel : channel + 1], fixture["outputs"][reference]), reference


def test_paper_v2_spike_digests(paper_v2_run):
    fixture, _, _, spikes = paper_v2_run
    for name, tensor in zip(SPIKE_DIGESTS, spikes, strict=True):
        frame = tensor[:, 0]
        reference = fixture["output_digests"][name]
        digest = hashlib.sha256(frame.to(torch.uint8).contiguous().numpy().tobytes()).hexdigest()
        assert digest == reference["sha256_uint8"], (name, frame.sum((0, 2, 3)) - reference["per_channel_sum"])
        assert int(frame.count_nonzero()) == reference["nonzero"]


def test_paper_v2_firing_rates_are_densities(paper_v2_run):
    fixture, model, _, _ = paper_v2_run
    rates = {name: float(value) for name, value in zoo.firing_rates(model).items()}
    reference = fixture["diagnostics"]["firing_rates_per_spiking_layer"]
    ours = {
        "bottom.2": "encoder.0.neuron.rate",
        "conv4.2": "encoder.4.neuron.rate",
        "bottleneck.0.sn1": "bottleneck.0.layer1.neuron.rate",
        "bottleneck.1.sn2": "bottleneck.1.layer2.neuron.rate",
        "deconv4.2": "decoder.0.neuron.rate",
        "deconv1.2": "decoder.3.neuron.rate",
    }
    for theirs, name in ours.items():
        assert rates[name] == pytest.approx(reference[theirs], abs=1e-4), theirs
    digests = fixture["output_digests"]
    assert rates["bottleneck_density"] == pytest.approx(digests["spk_rconv"]["nonzero"] / (512 * 17 * 22))
    assert rates["skip_densities.3"] == pytest.approx(digests["spk_add1"]["nonzero"] / (32 * 260 * 346))
    assert all(value.dim() == 0 for value in zoo.firing_rates(model).values())


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("stereospike-monocular", (260, 346)),
        ("stereospike-ann", (260, 346)),
        ("stereospike", (45, 61)),
        ("stereospike-monocular", (45, 61)),
        ("stereospike-ann", (45, 61)),
    ],
)
def test_runs_at_derived_sizes(name, size):
    """Decoder and head sizes follow the input (small-width copies; the parity test runs full width at 260 x 346)."""
    torch.manual_seed(0)
    model = zoo.build(name, **SMALL).eval()
    x = torch.poisson(torch.full((1, 1, model.in_channels, *size), 0.5))
    with torch.no_grad():
        depths, spikes = model(x, return_spikes=True)
    assert depths.shape == (1, 4, *size)
    expected = [(-(-size[0] // 16), -(-size[1] // 16)), (-(-size[0] // 8), -(-size[1] // 8))]
    assert [tuple(s.shape[-2:]) for s in spikes[:2]] == expected
    assert tuple(spikes[-1].shape[-2:]) == size


def test_full_width_models_at_another_size():
    torch.manual_seed(0)
    for name in ["stereospike", "stereospike-monocular", "stereospike-ann"]:
        model = zoo.build(name).eval()
        x = torch.poisson(torch.full((1, 1, model.in_channels, 19, 27), 0.5))
        with torch.no_grad():
            assert model(x).shape == (1, 4, 19, 27)


def test_outputs_are_cumulative_head_sums():
    torch.manual_seed(0)
    model = zoo.build("stereospike", **SMALL).eval()
    x = torch.poisson(torch.full((1, 1, 4, 30, 40), 1.0))
    captured = []
    hooks = [head.register_forward_hook(lambda _m, _i, out: captured.append(out)) for head in model.heads]
    with torch.no_grad():
        depths = model(x)
    for hook in hooks:
        hook.remove()
    assert torch.equal(depths[:, 0:1], captured[0])
    for k in range(1, 4):
        assert torch.equal(depths[:, k : k + 1], depths[:, k - 1 : k] + captured[k])


def test_multi_window_input_starts_fresh_and_integrates():
    torch.manual_seed(0)
    model = zoo.build("stereospike", **SMALL)
    with torch.no_grad():
        for conv in (model.encoder[0].conv, model.encoder[1].conv):
            conv.weight.mul_(8)
    x = torch.poisson(torch.full((1, 3, 4, 24, 32), 0.7))
    with torch.no_grad():
        first = model(x)
        second = model(x)
        single = model(x[:, :1])
    assert torch.equal(first, second)
    assert not torch.equal(first, single)
    assert first.shape == single.shape == (1, 4, 24, 32)


def test_rejects_wrong_input_layout():
    model = zoo.build("stereospike", **SMALL)
    with pytest.raises(ValueError, match=r"\[B, T, 4, H, W\]"):
        model(torch.zeros(1, 4, 20, 20))
    with pytest.raises(ValueError, match="got shape"):
        model(torch.zeros(1, 1, 2, 20, 20))


def test_surrogates_follow_the_reference_quirk():
    model = zoo.build("stereospike", **SMALL)
    assert isinstance(model.encoder[0].neuron.node, neuron.IFNode)
    assert isinstance(model.encoder[0].neuron.node.surrogate_function, surrogate.ATan)
    sew = model.bottleneck[0].layer1.neuron.node.surrogate_function
    assert isinstance(sew, surrogate.Sigmoid) and sew.alpha == 4.0
    fixed = zoo.build("stereospike", sew_surrogate="atan", **SMALL)
    assert isinstance(fixed.bottleneck[0].layer1.neuron.node.surrogate_function, surrogate.ATan)
    plif = zoo.build("stereospike-monocular", **SMALL)
    assert isinstance(plif.encoder[0].neuron.node, neuron.ParametricLIFNode)
    assert plif.encoder[0].neuron.gain == 10.0


def test_surrogate_gradients_and_spike_penalty():
    torch.manual_seed(0)
    model = zoo.build("stereospike", **SMALL)
    with torch.no_grad():
        for block in model.encoder:
            block.conv.weight.mul_(6)
    x = torch.poisson(torch.full((1, 1, 4, 24, 32), 1.0))
    depths = model(x)
    penalty = zoo.spike_penalty(model)
    (depths.square().mean() + penalty).backward()
    assert penalty.item() > 0
    assert model.encoder[0].conv.weight.grad.abs().sum() > 0
    assert model.bottleneck[0].layer1.conv.weight.grad is not None
    with pytest.raises(RuntimeError, match="ANN"):
        zoo.spike_penalty(zoo.build("stereospike-ann", **SMALL))


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("stereospike", {"widths": (8, 16)}, r"option 'widths' expects 5 channel counts .*, got \(8, 16\)"),
        ("stereospike-ann", {"widths": (4, 8, 8, 8, 8, 8)}, "option 'widths' expects 5 channel counts"),
        ("stereospike", {"widths": (4, 0, 8, 8, 8)}, r"option 'widths\[1\]' expects a value >= 1, got 0"),
        ("stereospike-monocular", {"in_channels": 0}, "option 'in_channels' expects a value >= 1, got 0"),
        ("stereospike", {"num_sew_blocks": -1}, "option 'num_sew_blocks' expects a value >= 0, got -1"),
        ("stereospike-ann", {"num_res_blocks": -1}, "option 'num_res_blocks' expects a value >= 0, got -1"),
        ("stereospike-monocular", {"tau": 1.0}, "option 'tau' expects a value > 1, got 1.0"),
    ],
)
def test_impossible_configurations_name_the_option(name, overrides, message):
    with pytest.raises(ValueError, match=f"StereoSpike: {message}"):
        zoo.build(name, **overrides)
