"""RAVEn family: parameter counts, input handling, attention implementations, decoder steps, checkpoint layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.convert import convert_state_dict, from_reference
from zoo.layers.attention import _reference_relative_shift, relative_shift
from zoo.models.raven import AUDIO_SAMPLES_PER_FRAME, RAVEnDecoder, RAVEnEncoder, normalise_video

MANIFESTS = {
    "raven-video-base": "video_base",
    "raven-video-large": "video_large",
    "raven-audio-base": "audio_base",
    "raven-audio-large": "audio_large",
    "raven-vsr-base": "vsr_base_e2e",
    "raven-vsr-large": "vsr_large_e2e",
    "raven-vsr-base-lowres": "vsr_base_lowres_e2e",
    "raven-vsr-large-lowres": "vsr_large_lowres_e2e",
    "raven-asr-base": "asr_base_e2e",
    "raven-asr-large": "asr_large_e2e",
    "raven-asr-base-lowres": "asr_base_lowres_e2e",
    "raven-asr-large-lowres": "asr_large_lowres_e2e",
}
TINY = dict(dim=32, heads=4, ffn=48, blocks=2)


def manifest(reference_dir: Path, name: str) -> dict:
    return json.loads((reference_dir / "raven" / f"{MANIFESTS[name]}.json").read_text())


def random_state(listing: list, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random tensors with the manifest's keys, shapes and dtypes (in its order)."""
    state = {}
    for key, shape, dtype in listing:
        if dtype == "int64":
            state[key] = torch.randint(0, 5, shape, device=device)
        else:
            state[key] = torch.randn(shape, device=device)
    return state


def test_every_variant_is_registered() -> None:
    raven = set(zoo.list_models("raven-*"))
    assert set(MANIFESTS) <= raven
    assert raven - set(MANIFESTS) == {"raven-lm", "raven-pretrain-base", "raven-pretrain-large", "raven-spiking-dvslip"}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_parameter_count_equals_the_listing(reference_dir: Path, name: str) -> None:
    assert zoo.model_info(name).num_params == manifest(reference_dir, name)["total_parameters"]


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_converter_maps_the_listed_keys_onto_the_model(reference_dir: Path, name: str) -> None:
    """Every listed key and shape maps onto exactly the model's state dict (checked on the meta device)."""
    listing = manifest(reference_dir, name)["state_dict"]
    converted = convert_state_dict(name, random_state(listing, "meta"))
    with torch.device("meta"):
        model = zoo.build(name)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state.items()}


def _legacy(state: dict[str, torch.Tensor], encoder: str, decoder: str | None) -> dict[str, torch.Tensor]:
    """The original's legacy names: input_layer./norm. (encoder), output_norm. (decoder)."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(encoder + "embed."):
            key = encoder + "input_layer." + key[len(encoder + "embed.") :]
        elif key.startswith(encoder + "after_norm."):
            key = encoder + "norm." + key[len(encoder + "after_norm.") :]
        elif decoder is not None and key.startswith(decoder + "after_norm."):
            key = decoder + "output_norm." + key[len(decoder + "after_norm.") :]
        renamed[key] = value
    return renamed


@pytest.mark.parametrize(
    "layout",
    ["bare", "encoder.", "model.model_video.backbone.encoder.", "bone.encoder.", "legacy"],
)
def test_pretrained_encoder_files_load_strictly(reference_dir: Path, layout: str) -> None:
    state = random_state(manifest(reference_dir, "raven-video-base")["state_dict"])
    if layout == "bare":
        source = state
    elif layout == "legacy":
        source = _legacy(state, "", None)
    else:
        source = _prefixed(state, layout)
    model = from_reference("raven-video-base", source)
    ours = model.state_dict()
    assert torch.equal(ours["embed.weight"], state["embed.0.weight"])
    assert torch.equal(ours["frontend.stem.conv.weight"], state["frontend.frontend3D.0.weight"])
    assert torch.equal(ours["blocks.11.gamma_attn"], state["encoders.11.gamma_mha"])
    assert torch.equal(ours["norm_out.bias"], state["after_norm.bias"])


def test_audio_stem_keys_are_mapped(reference_dir: Path) -> None:
    state = random_state(manifest(reference_dir, "raven-audio-base")["state_dict"])
    model = from_reference("raven-audio-base", _prefixed(state, "encoder."))
    ours = model.state_dict()
    assert torch.equal(ours["frontend.stem.conv.weight"], state["frontend.trunk.conv1.weight"])
    assert torch.equal(ours["frontend.layer5.1.bn2.bias"], state["frontend.trunk.layer4.1.bn2.bias"])
    shortcut = state["frontend.trunk.layer2.0.downsample.1.running_var"]
    assert torch.equal(ours["frontend.layer3.0.shortcut_bn.running_var"], shortcut)


@pytest.mark.parametrize("layout", ["flat", "lightning", "legacy"])
def test_finetuned_e2e_files_load_strictly(reference_dir: Path, layout: str) -> None:
    state = random_state(manifest(reference_dir, "raven-vsr-base-lowres")["state_dict"])
    source = {"flat": state, "lightning": _prefixed(state, "model."), "legacy": _legacy(state, "encoder.", "decoder.")}
    model = from_reference("raven-vsr-base-lowres", source[layout])
    ours = model.state_dict()
    assert torch.equal(ours["ctc_head.weight"], state["ctc.ctc_lo.weight"])
    assert torch.equal(ours["decoder.memory_proj.weight"], state["decoder.proj_decoder.weight"])
    assert torch.equal(
        ours["decoder.layers.5.src_attn.linear_k.bias"], state["decoder.decoders.5.src_attn.linear_k.bias"]
    )
    assert torch.equal(ours["decoder.norm_out.weight"], state["decoder.after_norm.weight"])


def test_unknown_or_duplicate_keys_are_errors(reference_dir: Path) -> None:
    state = random_state(manifest(reference_dir, "raven-audio-base")["state_dict"])
    with pytest.raises(KeyError, match="unexpected keys.*projector.weight"):
        convert_state_dict("raven-audio-base", {**state, "projector.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="two checkpoint keys map to 'embed.weight'"):
        convert_state_dict("raven-audio-base", {**state, "target.encoder.embed.0.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="flat E2E"):
        convert_state_dict("raven-asr-base", state)


def test_video_encoder_shapes_lengths_and_padding() -> None:
    """Only attention keys are masked: zero padding equals the cut clip, other padding leaks through the stem."""
    torch.manual_seed(0)
    model = RAVEnEncoder("video", **TINY).eval()
    video = torch.randn(2, 6, 88, 88)
    video[1, 4:] = 0.0
    lengths = torch.tensor([6, 4])
    noisy_padding = video.clone()
    noisy_padding[1, 4:] = 1.0
    with torch.no_grad():
        out = model(video, lengths)
        alone = model(video[1:, :4])
        noisy = model(noisy_padding, lengths)
    assert out.shape == (2, 6, 32)
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(noisy[0], out[0])
    assert (noisy[1, 2:4] - out[1, 2:4]).abs().max() > 1e-3


def test_audio_encoder_trims_to_whole_frames_and_counts_lengths_in_samples() -> None:
    torch.manual_seed(0)
    model = RAVEnEncoder("audio", **TINY).eval()
    audio = torch.randn(2, 5 * AUDIO_SAMPLES_PER_FRAME + 300)
    with torch.no_grad():
        out = model(audio, torch.tensor([audio.shape[1], 3 * AUDIO_SAMPLES_PER_FRAME + 10]))
        trimmed = model(audio[:, : 5 * AUDIO_SAMPLES_PER_FRAME], torch.tensor([5, 3]) * AUDIO_SAMPLES_PER_FRAME)
    assert out.shape == (2, 5, 32)
    torch.testing.assert_close(out, trimmed)
    with pytest.raises(ValueError, match="fewer than one 640-sample frame"):
        model(torch.zeros(1, 600))
    with pytest.raises(ValueError, match=r"\[B, N\] waveform"):
        model(torch.zeros(1, 1, 1280))


def test_normalise_video_matches_the_original_constants() -> None:
    pixels = torch.tensor([0, 255], dtype=torch.uint8)
    torch.testing.assert_close(normalise_video(pixels), torch.tensor([-0.421 / 0.165, (1 - 0.421) / 0.165]))


def test_relative_shift_is_the_original_shift_without_a_copy() -> None:
    scores = torch.randn(2, 3, 5, 9)
    shifted = relative_shift(scores)
    torch.testing.assert_close(shifted, _reference_relative_shift(scores), rtol=0, atol=0)
    assert shifted.data_ptr() == scores.data_ptr() + 4 * scores.element_size()
    row, col = 3, 1  # r = i - j = 2 sits in column T-1-r = 2
    assert shifted[0, 0, row, col] == scores[0, 0, row, 4 - (row - col)]


@pytest.mark.parametrize("training", [False, True])
def test_sdpa_and_reference_attention_agree(training: bool) -> None:
    """Same weights, padded batch, eval and training mode (no dropout): outputs and gradients agree (gradients to
    1e-5 of the largest one: some are sums that nearly cancel)."""
    torch.manual_seed(1)
    config = dict(**TINY, dropout=0.0, attention_dropout=0.0)
    fused = RAVEnEncoder("audio", **config, attention="sdpa").train(training)
    reference = RAVEnEncoder("audio", **config, attention="reference").train(training)
    reference.load_state_dict(fused.state_dict())
    audio = torch.randn(3, 7 * AUDIO_SAMPLES_PER_FRAME)
    lengths = torch.tensor([7, 5, 2]) * AUDIO_SAMPLES_PER_FRAME
    out_fused, out_reference = fused(audio, lengths), reference(audio, lengths)
    torch.testing.assert_close(out_fused, out_reference, atol=1e-5, rtol=1e-5)
    out_fused.square().sum().backward()
    out_reference.square().sum().backward()
    scale = max(parameter.grad.abs().max() for parameter in reference.parameters())
    for (name, a), b in zip(fused.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5 * scale, rtol=1e-4, msg=name)


def test_decoder_steps_equal_teacher_forcing() -> None:
    torch.manual_seed(2)
    decoder = RAVEnDecoder(vocab_size=11, encoder_dim=32, dim=16, heads=2, ffn=24, layers=2).eval()
    memory = torch.randn(2, 5, 32)
    valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    tokens = torch.randint(0, 11, (2, 4))
    with torch.no_grad():
        forced = torch.log_softmax(decoder(tokens, memory, valid), -1)
        state = decoder.init_state(memory, valid)
        for position in range(4):
            step, state = decoder.step(tokens[:, position], state)
            torch.testing.assert_close(step, forced[:, position], atol=1e-5, rtol=1e-5)
        assert state.keys[0].shape == (2, 2, 4, 8)
        reordered = state.select(torch.tensor([1, 1, 0]))
        assert torch.equal(reordered.keys[1][2], state.keys[1][0])


def test_recognizer_outputs_and_gradients() -> None:
    torch.manual_seed(3)
    model = zoo.build(
        "raven-vsr-base-lowres", **TINY, decoder_dim=16, decoder_heads=2, decoder_ffn=24, decoder_layers=1, vocab_size=9
    )
    video = torch.randn(2, 5, 88, 88)
    tokens = torch.tensor([[3, 4, 5], [6, -1, -1]])
    output = model(video, torch.tensor([5, 3]), tokens)
    assert output["ctc_logits"].shape == (2, 5, 9)
    assert output["decoder_logits"].shape == (2, 4, 9)
    assert output["frame_lengths"].tolist() == [5, 3]
    assert "decoder_logits" not in model(video)
    (output["ctc_logits"].sum() + output["decoder_logits"].sum()).backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_ctc_head_reads_the_encoder_output_through_dropout_in_training_only() -> None:
    """As the original's ESPnet CTC module: dropout (the model's `dropout`) before the CTC projection in training."""
    torch.manual_seed(4)
    model = zoo.build("raven-asr-base", **{**TINY, "dropout": 0.5}, decoder_dim=16, decoder_heads=2, decoder_ffn=24)
    audio = torch.randn(2, 4 * 640)
    model.eval()
    memory, _ = model.encode(audio)
    torch.testing.assert_close(model(audio)["ctc_logits"], model.ctc_head(memory))
    model.train()
    model.encoder.eval()  # the encoder's own dropout off: only the CTC dropout acts
    torch.manual_seed(5)
    dropped = model(audio)["ctc_logits"]
    torch.manual_seed(5)
    mask = torch.nn.functional.dropout(torch.ones_like(memory), 0.5, training=True)
    torch.testing.assert_close(dropped, model.ctc_head(memory * mask))
    assert not torch.allclose(dropped, model.ctc_head(memory))


def test_pretrained_encoder_option_loads_the_encoder_and_keeps_a_fresh_final_norm(tmp_path: Path) -> None:
    """As the original fine-tuning: every encoder weight from the file (any released layout) but after_norm."""
    torch.manual_seed(6)
    encoder = RAVEnEncoder("audio", **TINY)
    with torch.no_grad():
        encoder.norm_out.weight.fill_(3.0)
        encoder.norm_out.bias.fill_(0.5)
    original = {}
    for key, value in encoder.state_dict().items():  # our keys back to the original's, under a Lightning prefix
        key = key.replace("frontend.stem.conv.", "frontend.trunk.conv1.").replace(
            "frontend.stem.bn.", "frontend.trunk.bn1."
        )
        key = key.replace("embed.", "embed.0.").replace("norm_out.", "after_norm.")
        key = key.replace("blocks.", "encoders.").replace(".attn.", ".self_attn.").replace("norm_attn", "norm_mha")
        key = key.replace("gamma_attn", "gamma_mha").replace(".ff.", ".feed_forward.")
        for stage in range(2, 6):
            key = key.replace(f"frontend.layer{stage}.", f"frontend.trunk.layer{stage - 1}.")
        key = key.replace("shortcut_conv.", "downsample.0.").replace("shortcut_bn.", "downsample.1.")
        original["model.model_audio.backbone.encoder." + key] = value
    path = tmp_path / "raven_audio.pth"
    torch.save(original, path)
    small = dict(TINY, decoder_dim=16, decoder_heads=2, decoder_ffn=24, decoder_layers=1, vocab_size=9)
    model = zoo.build("raven-asr-base", **small, pretrained_encoder=str(path))
    loaded = model.encoder.state_dict()
    for key, value in encoder.state_dict().items():
        if not key.startswith("norm_out."):
            assert torch.equal(loaded[key], value), key
    assert torch.equal(loaded["norm_out.weight"], torch.ones(32))
    assert torch.equal(loaded["norm_out.bias"], torch.zeros(32))
