"""sparch models: parity with the original's fixtures, parameter counts of its listings, and documented behaviour.

Fixtures (``reference/sparch/*_2x32.fixture.pt``): the original model's float16-rounded weights, an input, and its
outputs with ``torch.manual_seed(2)`` right before the forward (the SNNs draw random initial states in every
forward). Converted with `zoo.convert.from_reference`, our models must give the logits within 1e-4 (the SNNs
reach ~2e-7), every hidden spike exactly, and the same firing rates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.convert import convert_state_dict, from_reference
from zoo.models.sparch import ALPHA_RANGE, SparchSNN

SPIKING = ("lif", "rlif", "adlif", "radlif")
PRESETS = {"shd": (700, 20), "ssc": (700, 35), "hd": (40, 20), "sc": (40, 35)}
FIXTURES = {
    "shd_lif_2x32": ("sparch-lif", {}),
    "shd_rlif_2x32": ("sparch-rlif", {}),
    "shd_adlif_2x32": ("sparch-adlif", {}),
    "shd_radlif_2x32": ("sparch-radlif", {}),
    "shd_adlif_bidir_2x32": ("sparch-adlif", {"bidirectional": True}),
    "sc_mlp_2x32": ("sparch-mlp", {"dataset": "sc"}),
    "sc_rnn_2x32": ("sparch-rnn", {"dataset": "sc"}),
    "sc_ligru_2x32": ("sparch-ligru", {"dataset": "sc"}),
    "sc_gru_2x32": ("sparch-gru", {"dataset": "sc"}),
}


def _listing_overrides(listing: dict) -> tuple[str, dict]:
    """Our model name and overrides for a reference listing's constructor arguments."""
    kwargs = listing["constructor_kwargs"]
    kind = (kwargs.get("neuron_type") or kwargs["ann_type"]).lower()
    sizes = kwargs["layer_sizes"]
    overrides = {
        "input_size": kwargs["input_shape"][-1],
        "num_classes": sizes[-1],
        "hidden_size": sizes[0],
        "num_hidden_layers": len(sizes) - 1,
        "bidirectional": kwargs["bidirectional"],
        "dropout": kwargs["dropout"],
        "normalization": kwargs["normalization"],
        "bias": kwargs["use_bias"],
    }
    return f"sparch-{kind}", overrides


@pytest.mark.parametrize("fixture_name", list(FIXTURES))
def test_matches_reference_fixture(reference_dir: Path, fixture_name: str) -> None:
    fixture = torch.load(reference_dir / "sparch" / f"{fixture_name}.fixture.pt", weights_only=True)
    name, overrides = FIXTURES[fixture_name]
    model = from_reference(name, fixture["state_dict"], hidden_size=32, **overrides).eval()
    hidden = {}
    for index, layer in enumerate(model.layers):
        layer.register_forward_hook(lambda module, inputs, output, index=index: hidden.__setitem__(index, output))
    torch.manual_seed(2)
    with torch.no_grad():
        output = model(fixture["inputs"])
    spiking = name.removeprefix("sparch-") in SPIKING
    scores = output[0] if spiking else output
    difference = (scores - fixture["outputs"]["logits"]).abs().max().item()
    assert difference < 1e-4, f"{fixture_name}: max |logits difference| {difference:.3e}"
    for index, activity in hidden.items():
        expected = fixture["intermediates"][f"{'snn' if spiking else 'ann'}.{index}"]
        if spiking:
            assert torch.equal(activity.transpose(0, 1), expected), f"layer {index}: spikes differ"
        else:
            torch.testing.assert_close(activity.transpose(0, 1), expected, atol=1e-5, rtol=0)
    if spiking:
        rates = fixture["outputs"]["firing_rates"]
        torch.testing.assert_close(output[1], rates, atol=1e-7, rtol=0)
        per_layer = zoo.firing_rates(model)
        assert sorted(per_layer) == [f"layers.{i}.firing" for i in range(2)]
        for index, rate in enumerate(rates.chunk(2)):
            torch.testing.assert_close(per_layer[f"layers.{index}.firing"], rate.mean(), atol=1e-7, rtol=0)


def test_initial_states_are_drawn_like_the_original(reference_dir: Path) -> None:
    """The first torch.rand draws after seeding are the fixture's u0, w0, s0 of layer 0 (bidirectional: 2B rows)."""
    fixture = torch.load(reference_dir / "sparch" / "shd_adlif_bidir_2x32.fixture.pt", weights_only=True)
    model = from_reference("sparch-adlif", fixture["state_dict"], hidden_size=32, bidirectional=True).eval()
    drawn = []
    original_rand = torch.rand

    def recording_rand(*args, **kwargs):
        drawn.append(original_rand(*args, **kwargs))
        return drawn[-1]

    torch.manual_seed(2)
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "rand", recording_rand)
        model(fixture["inputs"])
    expected = list(fixture["initial_states"].values())
    assert [tuple(t.shape) for t in drawn] == [tuple(t.shape) for t in expected]
    assert all(torch.equal(got, want) for got, want in zip(drawn, expected, strict=True))


def _listings(reference_dir: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((reference_dir / "sparch").glob("*.json"))]


def test_parameter_counts_and_keys_match_the_listings(reference_dir: Path) -> None:
    listings = _listings(reference_dir)
    assert len(listings) == 10
    for listing in listings:
        name, overrides = _listing_overrides(listing)
        with torch.device("meta"):
            model = zoo.build(name, **overrides)
        ours = model.state_dict()
        assert sum(p.numel() for p in model.parameters()) == listing["param_count"], listing["config"]
        reference = {key: torch.empty(shape, device="meta") for key, shape, _ in listing["state_dict"]}
        converted = convert_state_dict(name, reference, **overrides)
        assert sorted(converted) == sorted(ours), listing["config"]
        assert all(converted[key].shape == ours[key].shape for key in ours), listing["config"]


def test_default_spiking_models_are_the_shd_listings(reference_dir: Path) -> None:
    """Defaults = sparch's: SHD 700 -> 2 x 128 -> 20, so model_info counts equal the shd_*_2x128 listings."""
    for neuron in SPIKING:
        listing = json.loads((reference_dir / "sparch" / f"shd_{neuron}_2x128.json").read_text())
        assert zoo.model_info(f"sparch-{neuron}").num_params == listing["param_count"]


def test_all_eight_models_are_registered_and_presets_apply() -> None:
    names = [f"sparch-{kind}" for kind in ("adlif", "gru", "lif", "ligru", "mlp", "radlif", "rlif", "rnn")]
    assert zoo.list_models("sparch-*") == names
    for name in names:
        for dataset, (features, classes) in PRESETS.items():
            with torch.device("meta"):
                model = zoo.build(name, dataset=dataset)
            assert model.layers[0].input.in_features == features and model.readout.input.out_features == classes
        with torch.device("meta"):
            model = zoo.build(name, dataset="sc", input_size=13, num_classes=3, num_hidden_layers=3, hidden_size=8)
        assert len(model.layers) == 3 and model.layers[0].input.in_features == 13
        assert model.readout.input.out_features == 3


def _tiny(name: str, **overrides) -> torch.nn.Module:
    return zoo.build(name, dataset="hd", hidden_size=6, num_classes=4, **overrides)


def _raise_firing(model: torch.nn.Module) -> None:
    """At the default init sparch barely spikes; raise the hidden BN gains as the fixtures do."""
    with torch.no_grad():
        for layer in model.layers:
            layer.norm.weight.fill_(4.0)
            layer.norm.bias.fill_(0.75)


@pytest.mark.parametrize("kind", ["lif", "rlif", "adlif", "radlif", "mlp", "rnn", "ligru", "gru"])
def test_training_step_reaches_every_parameter(kind: str) -> None:
    torch.manual_seed(0)
    bidirectional = kind != "mlp"
    model = _tiny(f"sparch-{kind}", bidirectional=bidirectional).train()
    if kind in SPIKING:
        _raise_firing(model)
    output = model(3.0 * torch.randn(2, 7, 40))
    scores = output[0] if kind in SPIKING else output
    assert scores.shape == (2, 4)
    torch.nn.functional.cross_entropy(scores, torch.tensor([0, 3])).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name
    if kind in ("rlif", "radlif"):
        diagonal = model.layers[0].recurrent.weight.grad.diagonal()
        assert torch.equal(diagonal, torch.zeros_like(diagonal)), "V's diagonal must get no gradient (it is zeroed)"


def test_readout_scores_are_summed_class_probabilities() -> None:
    torch.manual_seed(0)
    model = _tiny("sparch-lif").eval()
    scores, rates = model(torch.randn(3, 5, 40))
    torch.testing.assert_close(scores.sum(1), torch.full((3,), 5.0))
    assert rates.shape == (12,) and ((rates >= 0) & (rates <= 1)).all()


def test_clamping_happens_in_the_forward() -> None:
    """An alpha outside [e^-1/5, e^-1/25] acts as the bound and receives no gradient (torch.clamp)."""
    torch.manual_seed(0)
    model = _tiny("sparch-lif").eval()
    _raise_firing(model)
    x = 3.0 * torch.randn(2, 5, 40)
    with torch.no_grad():
        model.layers[0].alpha[0] = ALPHA_RANGE[1]
    torch.manual_seed(1)
    at_bound = model(x)[0]
    with torch.no_grad():
        model.layers[0].alpha[0] = 2.0
    torch.manual_seed(1)
    beyond = model(x)[0]
    assert torch.equal(at_bound, beyond)
    beyond[:, 0].sum().backward()
    assert model.layers[0].alpha.grad[0] == 0 and model.layers[0].alpha.grad[1:].abs().sum() > 0


def test_initial_state_option() -> None:
    torch.manual_seed(0)
    random_model = _tiny("sparch-radlif").eval()
    zeros_model = _tiny("sparch-radlif", initial_state="zeros").eval()
    zeros_model.load_state_dict(random_model.state_dict())
    x = torch.randn(2, 5, 40)
    with torch.no_grad():
        assert not torch.equal(random_model(x)[0], random_model(x)[0]), "random states are redrawn every forward"
        assert torch.equal(zeros_model(x)[0], zeros_model(x)[0])


def test_batchnorm_statistics_span_batch_and_time() -> None:
    """BN1d(momentum 0.05) normalises W x over the B*T rows, before the dynamics."""
    torch.manual_seed(0)
    model = _tiny("sparch-adlif").train()
    x = torch.randn(3, 5, 40)
    model(x)
    layer = model.layers[0]
    rows = layer.input(x).reshape(-1, 6).detach()
    torch.testing.assert_close(layer.norm.running_mean, 0.05 * rows.mean(0))
    torch.testing.assert_close(layer.norm.running_var, 0.95 + 0.05 * rows.var(0))


def test_layernorm_and_no_normalisation_build_and_run() -> None:
    for normalization in ("layernorm", "none"):
        model = _tiny("sparch-gru", normalization=normalization).eval()
        assert model(torch.randn(2, 4, 40)).shape == (2, 4)
        model = _tiny("sparch-radlif", normalization=normalization).eval()
        assert model(torch.randn(2, 4, 40))[0].shape == (2, 4)


def test_bad_configurations_and_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="cannot be bidirectional"):
        _tiny("sparch-mlp", bidirectional=True)
    with pytest.raises(TypeError, match="option 'dataset' expects"):
        zoo.build("sparch-lif", dataset="timit")
    with pytest.raises(ValueError, match=r"expected input \(B, T, 40\).*got \(2, 5, 700\)"):
        _tiny("sparch-lif")(torch.zeros(2, 5, 700))
    with pytest.raises(ValueError, match=r"'features' must have 3 axes \[B, T, F\], got shape \(2, 5, 20, 2\)"):
        _tiny("sparch-lif")(torch.zeros(2, 5, 20, 2))  # zoo.build checks the registered spec (zoo.input_check)


def test_converter_rejects_foreign_or_misplaced_keys() -> None:
    model = _tiny("sparch-lif")
    assert isinstance(model, SparchSNN)
    with pytest.raises(KeyError, match="unexpected key 'encoder.0.weight'"):
        convert_state_dict("sparch-lif", {"encoder.0.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="pass num_hidden_layers"):
        convert_state_dict("sparch-lif", {"snn.3.alpha": torch.zeros(20)})


@pytest.mark.cuda
@pytest.mark.parametrize("kind", SPIKING)
def test_cupy_model_matches_torch_backend(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """On a GPU: the whole model with the CuPy kernels equals the reference backend (same CUDA-drawn states)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from zoo.kernels import cupy_status

    usable, reason = cupy_status()
    if not usable:
        pytest.skip(reason)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = zoo.build(f"sparch-{kind}", dataset="shd", hidden_size=64, bidirectional=True).cuda().train()
    _raise_firing(model)
    x = torch.poisson(torch.full((4, 50, 700), 0.05)).cuda()
    results = {}
    for backend in ("torch", "cupy"):
        monkeypatch.setenv("JELLYZOO_KERNEL_BACKEND", backend)
        model.zero_grad()
        torch.manual_seed(3)
        scores, rates = model(x)
        scores[:, 0].sum().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        results[backend] = (scores.detach(), rates.detach(), grads)
    (scores, rates, grads), (ref_scores, ref_rates, ref_grads) = results["cupy"], results["torch"]
    torch.testing.assert_close(scores, ref_scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(rates, ref_rates, atol=0, rtol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)


KINDS = ("lif", "rlif", "adlif", "radlif", "mlp", "rnn", "ligru", "gru")
LENGTHS = (5, 2, 7)


def _padded_batch(samples: list[torch.Tensor], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples [L_i, 40] in a (B, steps, 40) batch whose padding is noise (it must not matter), and their lengths."""
    batch = 5.0 * torch.randn(len(samples), steps, 40)
    for index, sample in enumerate(samples):
        batch[index, : len(sample)] = sample
    return batch, torch.tensor([len(sample) for sample in samples])


def _masked_model(kind: str) -> torch.nn.Module:
    options = {"initial_state": "zeros"} if kind in SPIKING else {}
    model = _tiny(f"sparch-{kind}", bidirectional=kind != "mlp", dropout=0.0, **options)
    if kind in SPIKING:
        _raise_firing(model)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_make_a_padded_batch_equal_each_sample_alone(kind: str) -> None:
    """Eval mode (BN on running statistics), bidirectional where possible: padding + lengths = samples one by one."""
    torch.manual_seed(0)
    model = _masked_model(kind)
    with torch.no_grad():
        model(3.0 * torch.randn(4, 6, 40))
    model.eval()
    samples = [3.0 * torch.randn(length, 40) for length in LENGTHS]
    x, lengths = _padded_batch(samples, steps=9)
    with torch.no_grad():
        batched = model(x, lengths)
        rates = zoo.firing_rates(model) if kind in SPIKING else {}
        alone = [model(sample.unsqueeze(0)) for sample in samples]
        if kind in SPIKING:
            batched_scores = batched[0]
            alone_scores = torch.cat([output[0] for output in alone])
        else:
            batched_scores, alone_scores = batched, torch.cat(alone)
    torch.testing.assert_close(batched_scores, alone_scores, atol=1e-5, rtol=1e-5)
    if kind in SPIKING:
        weights = lengths / lengths.sum()
        neuron_rates = sum(weight * output[1] for weight, output in zip(weights, alone, strict=True))
        torch.testing.assert_close(batched[1], neuron_rates, atol=1e-6, rtol=0)
        assert batched[1].sum() > 0, "no spikes: the comparison would be vacuous"
        for name, rate in rates.items():
            per_sample = []
            for sample in samples:
                with torch.no_grad():
                    model(sample.unsqueeze(0))
                per_sample.append(zoo.firing_rates(model)[name])
            torch.testing.assert_close(rate, sum(w * r for w, r in zip(weights, per_sample, strict=True)))


@pytest.mark.parametrize("kind", ["lif", "radlif", "gru"])
def test_padded_frames_change_nothing_in_training(kind: str) -> None:
    """Training mode: outputs, rates, BN running statistics and gradients do not depend on the padding."""
    results = []
    torch.manual_seed(0)
    samples = [3.0 * torch.randn(length, 40) for length in LENGTHS]
    for steps in (7, 12):
        torch.manual_seed(1)
        model = _masked_model(kind).train()
        output = model(*_padded_batch(samples, steps))
        scores = output[0] if kind in SPIKING else output
        scores[:, 0].sum().backward()
        grads = {name: parameter.grad for name, parameter in model.named_parameters()}
        buffers = {name: buffer for name, buffer in model.named_buffers() if "running" in name}
        results.append((output, grads, buffers))
    (first, first_grads, first_buffers), (second, second_grads, second_buffers) = results
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first_grads, second_grads)
    torch.testing.assert_close(first_buffers, second_buffers)


@pytest.mark.parametrize("kind", ["adlif", "ligru"])
def test_full_lengths_equal_a_plain_tensor(kind: str) -> None:
    """Lengths = T everywhere is the unmasked model (training mode: BN statistics and running updates agree)."""
    torch.manual_seed(0)
    x = 3.0 * torch.randn(3, 6, 40)
    outputs = []
    for lengths in (None, torch.full((3,), 6)):
        torch.manual_seed(1)
        model = _masked_model(kind).train()
        outputs.append((model(x, lengths), dict(model.named_buffers())))
    torch.testing.assert_close(outputs[0], outputs[1])


def test_masked_batchnorm_equals_batchnorm_on_the_valid_rows() -> None:
    from zoo.models.sparch import SequenceBatchNorm

    torch.manual_seed(0)
    x = torch.randn(6, 3, 4)
    valid = torch.arange(6).unsqueeze(1) < torch.tensor([6, 2, 4])
    ours, reference = SequenceBatchNorm(4, momentum=0.05), torch.nn.BatchNorm1d(4, momentum=0.05)
    output = ours(x, valid)
    torch.testing.assert_close(output[valid], reference(x[valid]))
    torch.testing.assert_close(ours.state_dict(), reference.state_dict())


def test_bad_lengths_are_named() -> None:
    model = _tiny("sparch-lif")
    x = torch.zeros(2, 5, 40)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\], got \[5, 6\]"):
        model(x, torch.tensor([5, 6]))
    with pytest.raises(TypeError, match=r"'lengths' must be an integer tensor \(int64\), got float32"):
        model(x, torch.tensor([5.0, 3.0]))
    with pytest.raises(ValueError, match=r"axis B \(batch\) is 3 in input 'lengths' but 2 in input 'features'"):
        model(x, torch.tensor([5, 3, 1]))
    with pytest.raises(TypeError, match=r"pass the inputs as separate arguments: model\(features, lengths\)"):
        model((x, torch.tensor([5, 3])))


@pytest.mark.parametrize(
    ("name", "option", "value", "expected"),
    [
        ("sparch-lif", "hidden_size", 0, "a value >= 1"),
        ("sparch-gru", "hidden_size", 0, "a value >= 1"),
        ("sparch-radlif", "num_hidden_layers", 0, "a value >= 1"),
        ("sparch-lif", "input_size", 0, "a value >= 1"),
        ("sparch-mlp", "num_classes", 0, "a value >= 1"),
        ("sparch-adlif", "dropout", 1.0, r"a value in \[0, 1\)"),
        ("sparch-rlif", "threshold", 0.0, "a value > 0"),
    ],
)
def test_impossible_configurations_name_the_option(name: str, option: str, value: float, expected: str) -> None:
    with pytest.raises(ValueError, match=rf"Sparch(SNN|ANN): option '{option}' expects {expected}, got {value}"):
        zoo.build(name, **{option: value})
