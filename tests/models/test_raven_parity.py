"""RAVEn Base video encoder (2 blocks) against the `video_base_l2` fixture of the original code.

Reference README, RAVEn part: the fp16 state dict is upcast, converted with `zoo.convert.from_reference` and loaded
strictly; `encoder_out` and every intermediate (front-end, scaled embedding, relative positional sinusoids, both
blocks) must match at atol = rtol = 1e-4, padded frames included, with both attention implementations.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from zoo.convert import from_reference
from zoo.layers.attention import relative_sinusoids

TOLERANCE = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def fixture(reference_dir: Path) -> dict:
    return torch.load(reference_dir / "raven" / "video_base_l2.fixture.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("attention", ["sdpa", "reference"])
def test_video_base_l2_matches_the_original(fixture: dict, attention: str) -> None:
    model = from_reference("raven-video-base", fixture["state_dict"], blocks=2, attention=attention).eval()
    captured: dict[str, torch.Tensor] = {}
    model.frontend.register_forward_hook(lambda module, args, out: captured.__setitem__("frontend_out", out))
    model.embed.register_forward_hook(
        lambda module, args, out: captured.__setitem__("embed_out", out * math.sqrt(model.dim))
    )
    for index, block in enumerate(model.blocks):
        block.register_forward_hook(
            lambda module, args, out, index=index: captured.__setitem__(f"block{index}_out", out)
        )
    inputs = fixture["inputs"]
    assert torch.equal(inputs["padding_mask"][:, 0], torch.arange(12)[None] < inputs["lengths"][:, None])
    with torch.no_grad():
        encoder_out = model(inputs["video"].squeeze(1), inputs["lengths"])
    expected = fixture["outputs"]
    torch.testing.assert_close(encoder_out, expected["encoder_out"], **TOLERANCE)
    captured["pos_emb"] = relative_sinusoids(12, 512)[None]
    assert sorted(captured) == sorted(key.removeprefix("intermediate/") for key in expected if "/" in key)
    for name, value in captured.items():
        torch.testing.assert_close(value, expected[f"intermediate/{name}"], **TOLERANCE, msg=name)


def test_padding_matters_and_is_reproduced(fixture: dict) -> None:
    """Ignoring the lengths moves the valid outputs of the padded sample well beyond the tolerance."""
    model = from_reference("raven-video-base", fixture["state_dict"], blocks=2).eval()
    with torch.no_grad():
        unmasked = model(fixture["inputs"]["video"].squeeze(1))
    expected = fixture["outputs"]["encoder_out"]
    assert (unmasked[1, :9] - expected[1, :9]).abs().max() > 1e-2
    torch.testing.assert_close(unmasked[0], expected[0], **TOLERANCE)
