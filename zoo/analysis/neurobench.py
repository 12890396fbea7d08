"""NeuroBench-compatible summary of a model and one of its forwards (NeuroBench 2.3 metric definitions).

NeuroBench (Yik et al., Nature Communications 16:1545, 2025; PyPI ``neurobench`` 2.3.0) defines, and these functions
compute the same way:

- ``ParameterCount``: number of parameters.
- ``Footprint``: bytes of all parameters and buffers (zero weights included).
- ``ConnectionSparsity``: zero weights / all weights over the leaf `nn.Linear`, `nn.Conv1d/2d/3d` modules (weight only)
  and `nn.RNNBase` / `nn.RNNCellBase` modules (weights and biases), rounded to 4 decimals.
- ``ActivationSparsity``: zero activations / all activations over every activation layer, step and sample; here the
  activation layers are the models' `SpikeRecord` layers (the input of each, which it passes on unchanged), and a
  -1 spike counts as an event (NeuroBench counts non-zeros).
- ``SynapticOperations``: ``Effective_MACs``, ``Effective_ACs`` and ``Dense`` per sample, see `zoo.analysis.synops`.
  NeuroBench counts only the connections its module hooks see; ``connections="all"`` adds the functional
  projections and recurrent layers it cannot count, and `undercount` says by how much it falls short.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from torch import nn

from zoo.analysis.activity import LayerActivity
from zoo.analysis.synops import ConnectionOps

__all__ = [
    "activation_sparsity",
    "connection_sparsity",
    "footprint_bytes",
    "parameter_count",
    "synaptic_operations",
    "undercount",
]

_STATELESS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)


def parameter_count(model: nn.Module) -> int:
    """NeuroBench ``ParameterCount``: number of parameter entries."""
    return sum(parameter.numel() for parameter in model.parameters())


def footprint_bytes(model: nn.Module) -> int:
    """NeuroBench ``Footprint``: bytes of all parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def connection_sparsity(model: nn.Module) -> float:
    """NeuroBench ``ConnectionSparsity``: zero weights / weights of the supported leaf layers, rounded to 4 decimals.

    Raises:
        ValueError: the model has no supported layer (NeuroBench divides by zero there).
    """
    zeros = weights = 0
    for module in model.modules():
        if next(module.children(), None) is not None:
            continue
        if isinstance(module, _STATELESS):
            tensors = [module.weight]
        elif isinstance(module, _RECURRENT):
            tensors = [
                parameter for name, parameter in module.named_parameters() if name.startswith(("weight", "bias"))
            ]
        else:
            continue
        zeros += sum(int((tensor == 0).sum()) for tensor in tensors)
        weights += sum(tensor.numel() for tensor in tensors)
    if not weights:
        raise ValueError(
            f"{type(model).__name__} has no Linear, Conv or recurrent layer: connection sparsity undefined"
        )
    return round(zeros / weights, 4)


def activation_sparsity(layers: Iterable[LayerActivity]) -> float:
    """NeuroBench ``ActivationSparsity`` over the given records: 1 - non-zero activations / all activations.

    Args:
        layers: `zoo.analysis.activity.ActivityAccumulator.layers()` (every record of the model that ran).

    Raises:
        ValueError: no record ran.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("activation sparsity needs at least one SpikeRecord that ran with detail on")
    total = sum(layer.neurons * layer.steps for layer in layers)
    return (total - sum(layer.nonzero for layer in layers)) / total


def synaptic_operations(
    connections: Iterable[ConnectionOps], which: Literal["neurobench", "all"] = "neurobench"
) -> dict[str, float]:
    """NeuroBench ``SynapticOperations`` per sample: ``{"Effective_MACs", "Effective_ACs", "Dense"}``.

    ``which="neurobench"`` sums the connections NeuroBench's harness counts; ``"all"`` every connection.
    """
    if which not in ("neurobench", "all"):
        raise ValueError(f"which must be 'neurobench' or 'all', got {which!r}")
    chosen = [c for c in connections if which == "all" or c.neurobench_visible]
    return {
        "Effective_MACs": sum(c.effective_macs for c in chosen),
        "Effective_ACs": sum(c.effective_acs for c in chosen),
        "Dense": sum(c.dense for c in chosen),
    }


def undercount(connections: Iterable[ConnectionOps]) -> dict[str, object]:
    """What NeuroBench's harness misses: ``effective`` and ``dense``, the fractions of all effective and dense
    operations it does not count (0 = it sees everything), and ``unseen_connections``, their names."""
    connections = list(connections)
    seen, every = synaptic_operations(connections, "neurobench"), synaptic_operations(connections, "all")
    effective_all = every["Effective_MACs"] + every["Effective_ACs"]
    effective_seen = seen["Effective_MACs"] + seen["Effective_ACs"]
    return {
        "effective": 1 - effective_seen / effective_all if effective_all else 0.0,
        "dense": 1 - seen["Dense"] / every["Dense"] if every["Dense"] else 0.0,
        "unseen_connections": [c.name for c in connections if not c.neurobench_visible],
    }
