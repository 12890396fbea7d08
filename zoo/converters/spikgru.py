"""Checkpoints of manondampfhoffer/SpikGRU-DVSLip (`models.SCNN` state dicts) -> the spikgru family.

Key map (reference -> ours):
- ``layer1.{conv,bn}.*`` -> ``frontend.stem.{conv,bn}.*``; ``layer1.alpha`` -> ``frontend.stem.neuron.alpha``
- ``layer{s}_{b}.{conv1,bn1,conv2,bn2}.*`` -> ``frontend.layer{s}.{b-1}.*``; ``alpha1/alpha2`` ->
  ``neuron1.alpha/neuron2.alpha``; ``downsample.*`` / ``bn3.*`` -> ``shortcut_conv.*`` / ``shortcut_bn.*``
- ``gru.grulayer{l}[_b].*`` (l = 1..3, ``_b`` = backward direction) -> ``head.layers.{l-1}.directions.{0|1}.*``
  with W_z, W_r, W_i (and their biases) stacked into ``input_weight/input_bias``, U_z, U_r, U_i into
  ``recurrent_weight``, ``ui.bias`` -> ``recurrent_bias``; ``alpha`` unchanged
- ``gru.*`` of a `torch.nn.GRU` backend -> ``head.gru.*``
- ``dense.dense.*`` -> ``readout.*`` (GRU heads) or ``readout.dense.*`` with ``dense.alpha/beta`` (FC model)
Every reference key must be used and every model key produced; anything else is an error naming the keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from zoo.convert import register_converter
from zoo.models.spikgru import SPIKGRU_VARIANTS

__all__ = ["convert_spikgru"]

_BLOCK = re.compile(r"layer(\d)_(\d)\.(.+)")
_BLOCK_PARTS = {
    "alpha1": "neuron1.alpha",
    "alpha2": "neuron2.alpha",
    "downsample": "shortcut_conv",
    "bn3": "shortcut_bn",
}


def _frontend_key(key: str) -> str | None:
    if key.startswith("layer1."):
        rest = key[len("layer1.") :]
        return "frontend.stem." + ("neuron.alpha" if rest == "alpha" else rest)
    match = _BLOCK.fullmatch(key)
    if match is None:
        return None
    stage, block, rest = match.groups()
    head, _, tail = rest.partition(".")
    part = _BLOCK_PARTS.get(head, head) + (f".{tail}" if tail else "")
    return f"frontend.layer{stage}.{int(block) - 1}.{part}"


def _spikgru_layers(source: dict[str, torch.Tensor], gates: int, used: set[str]) -> dict[str, torch.Tensor]:
    blocks = ("z", "r", "i") if gates == 2 else ("z", "i")
    layer_names = sorted({match.group(1) for key in source if (match := re.match(r"gru\.(grulayer\d(?:_b)?)\.", key))})
    converted = {}
    for name in layer_names:
        index = int(name[len("grulayer")]) - 1
        direction = 1 if name.endswith("_b") else 0
        prefix = f"gru.{name}."
        target = f"head.layers.{index}.directions.{direction}."

        def take(suffix: str, prefix: str = prefix) -> torch.Tensor:
            key = prefix + suffix
            if key not in source:
                raise KeyError(f"spikgru converter: reference checkpoint lacks {key!r} (a {gates}-gate model)")
            used.add(key)
            return source[key]

        converted[target + "input_weight"] = torch.cat([take(f"w{block}.weight") for block in blocks])
        converted[target + "input_bias"] = torch.cat([take(f"w{block}.bias") for block in blocks])
        converted[target + "recurrent_weight"] = torch.cat([take(f"u{block}.weight") for block in blocks])
        converted[target + "recurrent_bias"] = take("ui.bias")
        converted[target + "alpha"] = take("alpha")
    return converted


def convert_spikgru(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any], head: str, gates: int = 2):
    """Map a reference `SCNN` state dict onto a SpikGRUNet with the given head ("spikgru", "gru", "leaky_fc")."""
    source = dict(state_dict)
    used: set[str] = set()
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        ours = _frontend_key(key)
        if ours is not None:
            converted[ours] = value
            used.add(key)
    if head == "spikgru":
        converted.update(_spikgru_layers(source, gates, used))
    elif head == "gru":
        for key, value in source.items():
            if key.startswith("gru.") and "grulayer" not in key:
                converted["head." + key] = value
                used.add(key)
    for key, value in source.items():
        if key.startswith("dense."):
            rest = key[len("dense.") :]
            if head == "leaky_fc":
                converted["readout." + rest] = value
            else:
                converted["readout." + rest.removeprefix("dense.")] = value
            used.add(key)
    unused = sorted(set(source) - used)
    if unused:
        raise KeyError(f"spikgru converter ({head} head): reference keys with no place in the model: {unused[:10]}")
    return converted


def _register(names: list[str], head: str, gates: int = 2) -> None:
    @register_converter(*names)
    def converter(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
        return convert_spikgru(state_dict, config, head, gates)


for _name, _variant in SPIKGRU_VARIANTS.items():
    _register([_name], "spikgru", int(_variant["gates"]))
_register(["spikgru-hybridann", "lipreading-ann"], "gru")
_register(["spikgru-fc"], "leaky_fc")
