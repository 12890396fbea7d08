"""urancon/StereoSpike checkpoints -> `zoo.models.stereospike`.

Reference names (``network/SNN_models.py``, ``network/ANN_models.py`` @ 6254fec) and ours:

| reference | ours |
|---|---|
| ``bottom.0.*``, ``conv{i}.0.*`` (conv) | ``encoder.{0, i}.conv.*`` |
| ``bottom.2.w``, ``conv{i}.2.w`` (PLIF) | ``encoder.{0, i}.neuron.node.w`` |
| ``bottom.2.*``, ``conv{i}.2.*`` (ANN BatchNorm) | ``encoder.{0, i}.norm.*`` |
| ``bottleneck.{b}.conv{j}.0.*`` | ``bottleneck.{b}.layer{j}.conv.*`` |
| ``bottleneck.{b}.sn{j}.w`` | ``bottleneck.{b}.layer{j}.neuron.node.w`` |
| ``bottleneck.{b}.conv{j}.2.*`` (ANN BatchNorm) | ``bottleneck.{b}.layer{j}.norm.*`` |
| ``deconv{k}.0.up.1.weight`` | ``decoder.{K - k}.conv.conv.weight`` (K = 4: deconv4 is our stage 0) |
| ``deconv{k}.2.w`` / ``deconv{k}.2.*`` | ``decoder.{K - k}.neuron.node.w`` / ``.norm.*`` |
| ``predict_depth{k}.0.up.1.*`` | ``heads.{K - k}.up.conv.*`` |

Tensors are copied unchanged (same layouts). A key that matches no rule is an error, so nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from zoo.convert import register_converter

__all__ = ["convert_stereospike"]

_ENCODER = re.compile(r"^(bottom|conv(\d+))\.(0|2)\.(.+)$")
_BOTTLENECK_CONV = re.compile(r"^bottleneck\.(\d+)\.conv(\d)\.(0|2)\.(.+)$")
_BOTTLENECK_NEURON = re.compile(r"^bottleneck\.(\d+)\.sn(\d)\.w$")
_DECODER = re.compile(r"^deconv(\d+)\.(0\.up\.1|2)\.(.+)$")
_HEAD = re.compile(r"^predict_depth(\d+)\.0\.up\.1\.(weight|bias)$")


def _layer_suffix(position: str, name: str, spiking: bool) -> str:
    """Position 0 is the conv; position 2 is the neuron (SNN, parameter ``w``) or the BatchNorm (ANN)."""
    if position == "0":
        return f"conv.{name}"
    if position == "0.up.1":
        return f"conv.conv.{name}"
    return f"neuron.node.{name}" if spiking else f"norm.{name}"


def _rename(key: str, stages: int, spiking: bool) -> str:
    if match := _ENCODER.match(key):
        index = 0 if match.group(1) == "bottom" else int(match.group(2))
        return f"encoder.{index}.{_layer_suffix(match.group(3), match.group(4), spiking)}"
    if match := _BOTTLENECK_CONV.match(key):
        block, layer = match.group(1), match.group(2)
        return f"bottleneck.{block}.layer{layer}.{_layer_suffix(match.group(3), match.group(4), spiking)}"
    if match := _BOTTLENECK_NEURON.match(key):
        return f"bottleneck.{match.group(1)}.layer{match.group(2)}.neuron.node.w"
    if match := _DECODER.match(key):
        stage = stages - int(match.group(1))
        return f"decoder.{stage}.{_layer_suffix(match.group(2), match.group(3), spiking)}"
    if match := _HEAD.match(key):
        return f"heads.{stages - int(match.group(1))}.up.conv.{match.group(2)}"
    raise KeyError(f"StereoSpike converter: unexpected reference key {key!r}")


@register_converter("stereospike", "stereospike-monocular", "stereospike-ann")
def convert_stereospike(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a StereoSpike / monocular / equivalent-ANN reference state dict to our keys."""
    stages = len(config["widths"]) - 1
    spiking = "activation" not in config
    return {_rename(key, stages, spiking): value for key, value in state_dict.items()}
