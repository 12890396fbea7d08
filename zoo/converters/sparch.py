"""Converters from idiap/sparch checkpoints (`SNN` / `ANN` state dicts, keys ``snn.<i>.*`` / ``ann.<i>.*``).

sparch numbers its layers 0..L with the readout last. Hidden layer i becomes ``layers.<i>``, the last one
``readout``; inside a layer W/V become ``input``/``recurrent`` (and Wz/Vz/normz, Wr/Vr/normr of the ANN
gates become ``input_z``/``recurrent_z``/``norm_z``, ``input_r``/...); alpha, beta, a, b and ``norm`` keep
their names. Tensors are copied unchanged: V keeps its (H, H) layout (the model uses it the same way).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.convert import StateDict, register_converter

__all__ = ["convert_sparch"]

MODULE_NAMES = {
    "W": "input",
    "V": "recurrent",
    "Wz": "input_z",
    "Vz": "recurrent_z",
    "Wr": "input_r",
    "Vr": "recurrent_r",
    "norm": "norm",
    "normz": "norm_z",
    "normr": "norm_r",
}
PARAMETER_NAMES = {"alpha", "beta", "a", "b"}


SPARCH_MODELS = tuple(f"sparch-{kind}" for kind in ("lif", "rlif", "adlif", "radlif", "mlp", "rnn", "ligru", "gru"))


@register_converter(*SPARCH_MODELS)
def convert_sparch(state_dict: StateDict, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map sparch keys (``snn.<i>.W.weight``, ``ann.<i>.normz.running_mean``, ...) to ours.

    Raises:
        KeyError: a key that is not of a sparch SNN/ANN layer, or a layer index beyond the readout.
    """
    readout = config["num_hidden_layers"]
    converted = {}
    for key, value in state_dict.items():
        prefix, index, *rest = key.split(".")
        if prefix not in ("snn", "ann") or not index.isdigit() or not rest:
            raise KeyError(f"sparch converter: unexpected key {key!r} (expected snn.<layer>.* or ann.<layer>.*)")
        layer = int(index)
        if layer > readout:
            raise KeyError(
                f"sparch converter: key {key!r} is of layer {layer}, but num_hidden_layers={readout} puts the "
                f"readout at {readout}; pass num_hidden_layers to match the checkpoint"
            )
        target = "readout" if layer == readout else f"layers.{layer}"
        name, *tail = rest
        if name in PARAMETER_NAMES and not tail:
            converted[f"{target}.{name}"] = value
        elif name in MODULE_NAMES and tail:
            converted[".".join([target, MODULE_NAMES[name], *tail])] = value
        else:
            raise KeyError(f"sparch converter: unexpected key {key!r}")
    return converted
