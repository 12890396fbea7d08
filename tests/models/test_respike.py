"""ReSpike family: parameter counts and keys of the six reference listings, parity with the partial fixture (float64
and float32), the reference execution path, per-step BatchNorm, clip grouping, options and errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torchvision
from spikingjelly.activation_based import functional

import zoo
from zoo.convert import convert_state_dict, from_reference
from zoo.models.respike import SpikingPreActBlock, SpikingResidualBranch, StepwiseBatchNorm2d

LISTINGS = {
    "hmdb51_resnet50_T16_s4_downsample": ("respike-resnet50", {}),
    "ucf101_resnet50_T16_s4_downsample": ("respike-resnet50", {"num_classes": 101}),
    "hmdb51_resnet18_T16_s4_downsample": ("respike-resnet18", {}),
    "ucf101_resnet18_T16_s4_downsample": ("respike-resnet18", {"num_classes": 101}),
    "hmdb51_resnet50_T16_s4": ("respike-resnet50", {"downsample": False}),
    "kinetics400_resnet50_T16_s2_downsample": ("respike-resnet50", {"num_classes": 400, "key_frame_stride": 2}),
}
FIXTURE = "hmdb51_resnet18_T16_s4_downsample"


@pytest.fixture(scope="module")
def respike_dir(reference_dir: Path) -> Path:
    return reference_dir / "respike"


@pytest.fixture(scope="module")
def fixture(respike_dir: Path) -> dict:
    return torch.load(respike_dir / f"{FIXTURE}.fixture.pt", weights_only=True)


@pytest.mark.parametrize("config", sorted(LISTINGS))
def test_reference_listing_params_and_keys(config, respike_dir):
    """Every listed reference config converts key-for-key and shape-for-shape onto our model, same parameter count."""
    listing = json.loads((respike_dir / f"{config}.json").read_text())
    name, overrides = LISTINGS[config]
    with torch.device("meta"):
        model = zoo.build(name, **overrides)
    ours = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == listing["param_count_total"]
    assert len(ours) == listing["state_dict_entries"]
    reference = {key: torch.empty(shape, device="meta") for key, shape, _ in listing["state_dict"]}
    converted = convert_state_dict(name, reference, **overrides)
    assert set(converted) == set(ours)
    for key, value in converted.items():
        assert value.shape == ours[key].shape, key


def test_default_parameter_counts_match_reference_index(respike_dir):
    index = json.loads((respike_dir / "index.json").read_text())["configs"]
    assert (
        zoo.model_info("respike-resnet50").num_params == index["hmdb51_resnet50_T16_s4_downsample"]["param_count_total"]
    )
    assert zoo.model_info("respike-resnet18").num_params == index[FIXTURE]["param_count_total"]


def test_converter_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unexpected reference key 'snn_backbone.mystery.weight'"):
        convert_state_dict("respike-resnet18", {"snn_backbone.mystery.weight": torch.zeros(1)})


def test_from_reference_loads_every_tensor_of_a_full_checkpoint(respike_dir):
    """A full reference-keyed state dict (values drawn per key) lands on the right parameters and buffers."""
    listing = json.loads((respike_dir / f"{FIXTURE}.json").read_text())
    generator = torch.Generator().manual_seed(0)
    reference = {
        key: torch.randint(0, 5, shape, generator=generator)
        if dtype == "int64"
        else torch.randn(shape, generator=generator)
        for key, shape, dtype in listing["state_dict"]
    }
    model = from_reference("respike-resnet18", reference)
    ours = model.state_dict()
    assert torch.equal(ours["ann.conv1.weight"], reference["ann_layer0.0.weight"])
    assert torch.equal(ours["ann.layer4.1.bn2.running_var"], reference["ann_layer4.1.bn2.running_var"])
    assert torch.equal(
        ours["snn.layers.2.0.shortcut_conv.weight"], reference["snn_backbone.layer3.0.shortcut.1.weight"]
    )
    block = "snn_backbone.fusion4.transformer_blocks.0"
    assert torch.equal(ours["snn.fusions.3.block.cross_attn.to_k.weight"], reference[f"{block}.attn2.to_k.weight"])
    assert torch.equal(ours["snn.fusions.3.block.self_attn.to_out.bias"], reference[f"{block}.attn1.to_out.0.bias"])
    assert torch.equal(ours["snn.fusions.3.block.ff.proj.weight"], reference[f"{block}.ff.net.0.proj.weight"])
    assert torch.equal(ours["snn.fusions.3.block.ff_norm.weight"], reference[f"{block}.norm3.weight"])
    assert torch.equal(ours["fc.bias"], reference["fc.bias"])


def _fixture_model(fixture: dict, dtype: torch.dtype, execution: str) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The fixture's SNN branch + fc in our model, its ANN stages replaced by the stored stage outputs."""
    model = zoo.build("respike-resnet18", execution=execution)
    missing, unexpected = model.load_state_dict(convert_state_dict("respike-resnet18", fixture["state_dict"]), False)
    assert not unexpected and missing and all(key.startswith("ann.") for key in missing)
    model = model.to(dtype).eval()
    stages = [fixture["inputs"][f"ann_s{i}"].to(dtype) for i in range(1, 5)]
    model.ann.forward = lambda frames: stages
    return model, stages


def _run_fixture(model: torch.nn.Module, stages: list[torch.Tensor], clip: torch.Tensor):
    with torch.no_grad():
        _, residuals = model.split_clip(clip)
        functional.reset_net(model)
        snn_out = model.snn(residuals, stages).transpose(0, 1)
        return snn_out, model(clip)


def test_fixture_parity_float64(fixture):
    """Primary check (reference README): float64 on CPU against outputs_fp64 at atol = rtol = 1e-9."""
    model, stages = _fixture_model(fixture, torch.float64, "multistep")
    snn_out, logits = _run_fixture(model, stages, fixture["inputs"]["clip"].double())
    expected = fixture["outputs_fp64"]
    torch.testing.assert_close(snn_out, expected["snn_backbone_out"], atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(logits, expected["logits"], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("execution", ["multistep", "reference"])
def test_fixture_parity_float32(fixture, execution):
    """float32 against `outputs`: logits within 1e-4, SNN output within 1e-3 (README tolerances, no TF32/autocast).

    The reference execution is checked in float64 against the multi-step one below (training step, gradients)."""
    model, stages = _fixture_model(fixture, torch.float32, execution)
    snn_out, logits = _run_fixture(model, stages, fixture["inputs"]["clip"])
    torch.testing.assert_close(snn_out, fixture["outputs"]["snn_backbone_out"], atol=1e-3, rtol=0.0)
    torch.testing.assert_close(logits, fixture["outputs"]["logits"], atol=1e-4, rtol=0.0)


def test_split_clip_groups_key_frames_and_residuals_from_the_key_frame():
    model = zoo.build("respike-resnet18", key_frame_stride=4)
    clip = torch.randn(2, 8, 3, 32, 32)
    keys, residuals = model.split_clip(clip)
    assert keys.shape == (4, 3, 32, 32) and residuals.shape == (3, 4, 3, 32, 32)
    for b in range(2):
        for g in range(2):
            n = b * 2 + g  # batch outer, group inner
            assert torch.equal(keys[n], clip[b, 4 * g])
            for j in range(1, 4):
                assert torch.equal(residuals[j - 1, n], clip[b, 4 * g + j] - clip[b, 4 * g])


def test_clip_errors_name_the_problem():
    model = zoo.build("respike-resnet18")
    with pytest.raises(ValueError, match="T=6 is not a positive multiple of key_frame_stride=4"):
        model(torch.zeros(1, 6, 3, 64, 64))
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.zeros(1, 4, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        model(torch.zeros(4, 3, 64, 64))
    with pytest.raises(ValueError, match="key_frame_stride must be >= 2"):
        zoo.build("respike-resnet18", key_frame_stride=1)


def test_group_logits_and_fresh_state_per_forward():
    torch.manual_seed(0)
    model = zoo.build("respike-resnet18", num_classes=7, group_logits=True, width_mult=2).eval()
    clip = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        groups = model(clip)
        again = model(clip)
        model.group_logits = False
        mean = model(clip)
    assert groups.shape == (2, 2, 7) and mean.shape == (2, 7)
    assert torch.equal(groups, again)
    torch.testing.assert_close(mean, groups.mean(1), rtol=0, atol=0)


def test_reference_execution_matches_multistep_in_training():
    """Single-step loop with checkpointing ("reference"), multi-step, and multi-step with checkpoint_fusion give the
    same outputs, gradients (weights and ANN contexts) and BN running statistics in a float64 training step."""
    torch.manual_seed(1)
    widths = (32, 64, 96, 128)
    branch = SpikingResidualBranch(widths, widths, True, "multistep", False).double()
    with torch.no_grad():  # fusions that are not identities, and a stem that makes the first layers fire
        for fusion in branch.fusions:
            fusion.proj_out.weight.normal_(0, 0.05)
        branch.stem_conv.weight.mul_(4.0)
    generator = torch.Generator().manual_seed(2)
    residuals = torch.randn(3, 2, 3, 32, 32, dtype=torch.float64, generator=generator)
    shapes = [(2, 32, 8, 8), (2, 64, 4, 4), (2, 96, 2, 2), (2, 128, 1, 1)]
    contexts = [torch.randn(shape, dtype=torch.float64, generator=generator) for shape in shapes]
    weights = torch.randn(3, 2, 128, 1, 1, dtype=torch.float64, generator=generator)
    results = []
    for execution, checkpoint_fusion in (("multistep", False), ("reference", False), ("multistep", True)):
        model = copy.deepcopy(branch).train()
        model.execution, model.checkpoint_fusion = execution, checkpoint_fusion
        stages = [context.clone().requires_grad_() for context in contexts]
        functional.reset_net(model)
        out = model(residuals, stages)
        (out * weights).sum().backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        grads.update({f"context{i}": stage.grad for i, stage in enumerate(stages)})
        rates = {**zoo.firing_rates(model), "penalty": zoo.spike_penalty(model).detach()}
        results.append((out.detach(), grads, dict(model.named_buffers()), rates))
    out, grads, buffers, rates = results[0]
    scale = max(float(grad.abs().max()) for grad in grads.values())
    assert len(rates) == 17 and 0.0 < float(torch.stack(list(rates.values())).mean()) < 1.0
    for other_out, other_grads, other_buffers, other_rates in results[1:]:
        torch.testing.assert_close(other_out, out, atol=1e-12, rtol=1e-12)
        for name, grad in grads.items():  # float64 summation-order noise, relative to the gradients' scale
            torch.testing.assert_close(other_grads[name], grad, atol=1e-12 * scale, rtol=1e-9, msg=name)
        for name, buffer in buffers.items():
            torch.testing.assert_close(other_buffers[name], buffer, atol=1e-12, rtol=1e-10, msg=name)
        for name, rate in rates.items():
            torch.testing.assert_close(other_rates[name], rate, atol=1e-12, rtol=0, msg=name)


def test_stepwise_batchnorm_equals_one_batchnorm_call_per_step():
    torch.manual_seed(0)
    ours, plain = StepwiseBatchNorm2d(4), torch.nn.BatchNorm2d(4)
    x = torch.randn(3, 5, 4, 6, 6) * torch.tensor([1.0, 3.0, 0.5])[:, None, None, None, None]
    out = ours(x)
    expected = torch.stack([plain(step) for step in x])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(ours.running_mean, plain.running_mean)
    torch.testing.assert_close(ours.running_var, plain.running_var)
    assert int(ours.num_batches_tracked) == 3
    ours.eval(), plain.eval()
    torch.testing.assert_close(ours(x), torch.stack([plain(step) for step in x]))


def test_fusions_start_as_identity_and_fusion1_is_skipped_without_downsample():
    torch.manual_seed(0)
    model = zoo.build("respike-resnet18", downsample=False).eval()
    fusion = model.snn.fusions[1]
    h, context = torch.randn(3, 2, 128, 4, 4), torch.randn(2, 128, 4, 4)
    assert torch.equal(fusion(h, context), h)
    called = []
    model.snn.fusions[0].register_forward_hook(lambda *args: called.append(True))
    with torch.no_grad():
        model(torch.randn(2, 4, 3, 32, 32))
    assert not called


def test_ann_weights_load_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = zoo.build("respike-resnet18", ann_weights=str(path))
    assert torch.equal(model.ann.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.ann.layer3[1].bn2.running_mean, resnet.layer3[1].bn2.running_mean)
    with pytest.raises(ValueError, match="is not a torchvision resnet50 state dict"):
        zoo.build("respike-resnet50", ann_weights=str(path))
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        zoo.build("respike-resnet18", ann_weights=str(tmp_path / "missing.pth"))


def test_reduced_precision_autocast_keeps_spikes_binary_and_membranes_in_float32():
    torch.manual_seed(0)
    block = SpikingPreActBlock(32, 64, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(torch.randn(3, 2, 32, 8, 8) * 3)
    spikes = block.lif2(torch.randn(3, 2, 4, dtype=torch.bfloat16) * 3)
    assert torch.isfinite(out).all() and out.shape == (3, 2, 64, 4, 4)
    assert spikes.dtype == torch.bfloat16 and set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert block.lif2.node.v.dtype == torch.float32
    block.lif2(torch.randn(3, 2, 4, dtype=torch.float64))
    assert block.lif2.node.v.dtype == torch.float64  # float64 stays float64 (parity checks)
