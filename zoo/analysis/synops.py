"""Synaptic operations per connection, counted the way NeuroBench 2.3 counts them, for every projection a model makes.

A connection is one weight product: an `nn.Linear`, `nn.Conv1d/2d/3d` or recurrent `nn.RNN/GRU/LSTM` module, or a
*functional projection* that a module computes itself (``F.linear`` on its own parameters, a product inside a fused
kernel such as SpikGRU's recurrent U or sparch's recurrent V). For each call of a connection on an input x:

- effective operations: the product rerun on binarised copies, every non-zero entry of x and of the weight set to
  1 and the bias dropped, summed over the output. That is the number of (input, weight) pairs that are both non-zero:
  the work an event-driven chip does.
- they are **ACs** (accumulates) when every entry of x is in {-1, 0, +1} (a signed spike is an event; a -1 spike
  only flips the sign of the added weight), and **MACs** otherwise (real-valued or integer-valued inputs);
- dense operations: the same with x and the weight all ones (padding of a convolution still counts nothing), the
  work of a dense accelerator.

These are NeuroBench 2.3's ``SynapticOperations`` definitions (``Effective_ACs``, ``Effective_MACs``, ``Dense``,
divided by the number of samples), so the totals over the connections NeuroBench can see agree with its harness
exactly. NeuroBench cannot see functional projections (it hooks modules only), and it raises on `nn.RNNBase`
layers (its harness then reports the whole metric as 0): `ConnectionOps.neurobench_visible` says which connections
it counts, so a report can say by how much it undercounts.

Recurrent modules (`nn.RNN`, `nn.GRU`, `nn.LSTM`) are counted as their matrix products: per layer and direction the
input product W_ih x_t and the recurrent product W_hh h_{t-1} (h_{-1} = the given initial state, or zeros). The
gate element-wise products are neuron operations and not counted. Intermediate layers are recomputed one layer at a
time from the module's own weights (dropout between layers is not redrawn: count in eval mode).

The protocol for functional projections: a module whose forward makes weight products outside the modules above
defines::

    def functional_projections(self, args: tuple, kwargs: dict, output) -> list[Projection]: ...

It receives the forward's positional and keyword arguments and its output and returns each product as a
`Projection` (its input as the product saw it, and the weight). The counter calls it from a forward hook only while
counting, so the protocol costs nothing otherwise.

Usage::

    with SynapticOperationCounter(model) as counter:
        model(inputs)
    for connection in counter.connections(samples=inputs.shape[0]):
        print(connection.name, connection.effective_acs, connection.effective_macs, connection.dense)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConnectionOps",
    "Projection",
    "SynapticOperationCounter",
    "count_projection",
    "is_spike_tensor",
]

ProjectionOp = Literal["linear", "conv1d", "conv2d", "conv3d"]
_CONV_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {"conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d}
_CONV_MODULES = {nn.Conv1d: "conv1d", nn.Conv2d: "conv2d", nn.Conv3d: "conv3d"}
_COUNTED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase)
"""Modules counted from their own weights; any other module is counted through `functional_projections`."""


@dataclasses.dataclass(frozen=True)
class Projection:
    """One weight product a module computes, as the op counter needs to see it.

    Attributes:
        name: what the product is, appended to the module's name (``"recurrent"``, ``"input"``).
        inputs: the product's input as it saw it: [..., in] for ``"linear"`` (y = x W^T);
            [N, C_in, *spatial] for a convolution.
        weight: [out, in] for ``"linear"``; the convolution's weight [C_out, C_in / groups, *kernel].
        op: ``"linear"``, ``"conv1d"``, ``"conv2d"`` or ``"conv3d"``.
        conv: stride, padding, dilation and groups of a convolution (as `torch.nn.functional.conv2d` takes them).
        neurobench_visible: whether NeuroBench's module hooks see this product (False for functional projections).
    """

    name: str
    inputs: torch.Tensor
    weight: torch.Tensor
    op: ProjectionOp = "linear"
    conv: dict[str, Any] = dataclasses.field(default_factory=dict)
    neurobench_visible: bool = False


@dataclasses.dataclass
class ConnectionOps:
    """Synaptic operations of one connection, per sample (the forward's totals divided by the sample count).

    Attributes:
        name: module name, with ``.<projection name>`` for a functional projection or a recurrent layer's product.
        kind: ``Linear``, ``Conv2d``, ``GRU``, ... or ``functional``.
        calls: how many times the connection ran in the counted forwards.
        effective_acs: effective operations of the calls whose input was in {-1, 0, +1}.
        effective_macs: effective operations of the other calls.
        dense: dense operations of all calls.
        input_kind: ``"spikes"`` (every call's input in {-1, 0, +1}), ``"real"`` (none) or ``"mixed"``.
        neurobench_visible: whether NeuroBench 2.3's harness counts this connection.
        weights: number of weights; nonzero_weights: how many of them are non-zero.
    """

    name: str
    kind: str
    calls: int
    effective_acs: float
    effective_macs: float
    dense: float
    input_kind: str
    neurobench_visible: bool
    weights: int
    nonzero_weights: int

    @property
    def effective(self) -> float:
        """Effective ACs + MACs."""
        return self.effective_acs + self.effective_macs

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "effective": self.effective}


def is_spike_tensor(x: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor: every entry of x is -1, 0 or +1 (NeuroBench's test for a spiking input)."""
    return ((x == 0) | (x == 1) | (x == -1)).all()


def count_projection(projection: Projection) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(effective, dense, spiking) of one product: float64 0-d counts and a 0-d bool (no host synchronisation).

    Effective = sum over the output of the product of the binarised input and weight (bias excluded); dense = the
    same with all-ones input and weight.
    """
    x, weight = projection.inputs.detach(), projection.weight.detach()
    spiking = is_spike_tensor(x)
    if projection.op == "linear":
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"projection {projection.name!r}: input [..., {x.shape[-1]}] does not match weight "
                f"{tuple(weight.shape)} (expected [out, in])"
            )
        active_inputs = (x != 0).reshape(-1, weight.shape[1]).sum(0, dtype=torch.float64)  # [in]
        fan_out = (weight != 0).sum(0, dtype=torch.float64)  # [in]: non-zero weights leaving each input
        effective = (active_inputs * fan_out).sum()
        rows = x.numel() // weight.shape[1]
        dense = torch.tensor(float(rows) * weight.shape[0] * weight.shape[1], dtype=torch.float64, device=x.device)
        return effective, dense, spiking
    if projection.op not in _CONV_FUNCTIONS:
        raise ValueError(f"projection {projection.name!r}: op must be linear or conv1d/2d/3d, got {projection.op!r}")
    conv = _CONV_FUNCTIONS[projection.op]
    # Each output entry counts at most C_in/groups * prod(kernel) pairs, exact in float32; the sum is taken in float64.
    binary_weight = (weight != 0).float()
    effective = conv((x != 0).float(), binary_weight, None, **projection.conv).sum(dtype=torch.float64)
    ones = torch.ones_like(x, dtype=torch.float32)
    dense = conv(ones, torch.ones_like(binary_weight), None, **projection.conv).sum(dtype=torch.float64)
    return effective, dense, spiking


def _module_projections(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> list[Projection]:
    """The products of a Linear / Conv / RNN module, or those its `functional_projections` declares."""
    if isinstance(module, nn.Linear):
        return [Projection("", args[0], module.weight, neurobench_visible=True)]
    for conv_type, op in _CONV_MODULES.items():
        if isinstance(module, conv_type):
            if module.padding_mode != "zeros":
                raise ValueError(f"op counting takes zero-padded convolutions, got padding_mode={module.padding_mode}")
            options = {
                "stride": module.stride,
                "padding": module.padding,
                "dilation": module.dilation,
                "groups": module.groups,
            }
            return [Projection("", args[0], module.weight, op=op, conv=options, neurobench_visible=True)]
    if isinstance(module, nn.RNNBase):
        return _recurrent_projections(module, args, kwargs)
    return list(module.functional_projections(args, kwargs, output))


def _recurrent_projections(module: nn.RNNBase, args: tuple, kwargs: dict) -> list[Projection]:
    """Input and recurrent products of every layer and direction of an nn.RNN / nn.GRU / nn.LSTM."""
    x = args[0] if args else kwargs["input"]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        raise ValueError(f"op counting of {type(module).__name__} does not take packed sequences")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"op counting of {type(module).__name__} with proj_size > 0 is not supported")
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    hx, cells = hx if isinstance(hx, tuple) else (hx, None)  # LSTM: (h_0, c_0)
    x = x.detach()
    if module.batch_first and x.dim() == 3:
        x = x.transpose(0, 1)
    if x.dim() == 2:
        x = x.unsqueeze(1)
        hx = None if hx is None else hx.unsqueeze(1)
        cells = None if cells is None else cells.unsqueeze(1)
    directions = 2 if module.bidirectional else 1
    projections = []
    layer_input = x
    for layer in range(module.num_layers):
        options = {"num_layers": 1, "bias": module.bias, "bidirectional": module.bidirectional}
        single = type(module)(layer_input.shape[-1], module.hidden_size, **options).to(device=x.device, dtype=x.dtype)
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            target = "_reverse" if direction else ""
            with torch.no_grad():
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    if hasattr(module, kind + suffix):
                        getattr(single, f"{kind}_l0{target}").copy_(getattr(module, kind + suffix))
        rows = slice(layer * directions, (layer + 1) * directions)
        initial = None if hx is None else hx[rows].detach()
        state = initial if cells is None or initial is None else (initial, cells[rows].detach())
        with torch.no_grad():
            output, _ = single(layer_input, state)
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            hidden = output[..., direction * module.hidden_size : (direction + 1) * module.hidden_size]
            start = torch.zeros_like(hidden[0]) if initial is None else initial[direction]
            if direction == 0:
                previous = torch.cat([start.unsqueeze(0), hidden[:-1]])
            else:
                previous = torch.cat([hidden[1:], start.unsqueeze(0)])
            projections.append(Projection("weight_ih" + suffix, layer_input, getattr(module, "weight_ih" + suffix)))
            projections.append(Projection("weight_hh" + suffix, previous, getattr(module, "weight_hh" + suffix)))
        layer_input = output
    return projections


class SynapticOperationCounter:
    """Context manager counting the synaptic operations of every connection of `model` in the forwards inside it.

    Hooks every `nn.Linear`, `nn.Conv1d/2d/3d` and `nn.RNNBase` module and every module with a
    `functional_projections` method (module docstring). Counts stay on the device until `connections` reads them
    (one host synchronisation).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._totals: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> SynapticOperationCounter:
        for name, module in self.model.named_modules():
            if isinstance(module, _COUNTED_MODULES) or callable(getattr(module, "functional_projections", None)):
                hook = self._make_hook(name, module)
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, name: str, module: nn.Module) -> Callable[..., None]:
        kind = type(module).__name__ if isinstance(module, _COUNTED_MODULES) else "functional"

        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            with torch.no_grad():
                for projection in _module_projections(module, args, kwargs, output):
                    key = ".".join(part for part in (name, projection.name) if part)
                    self._add(key, kind, projection)

        return hook

    def _add(self, key: str, kind: str, projection: Projection) -> None:
        effective, dense, spiking = count_projection(projection)
        entry = self._totals.get(key)
        if entry is None:
            weight = projection.weight.detach()
            zero = torch.zeros((), dtype=torch.float64, device=effective.device)
            entry = self._totals[key] = {
                "kind": kind,
                "visible": projection.neurobench_visible,
                "calls": 0,
                "acs": zero.clone(),
                "macs": zero.clone(),
                "dense": zero.clone(),
                "spike_calls": zero.clone(),
                "weights": weight.numel(),
                "nonzero_weights": (weight != 0).sum(dtype=torch.float64),
            }
        entry["calls"] += 1
        entry["acs"] += torch.where(spiking, effective, 0.0)
        entry["macs"] += torch.where(spiking, 0.0, effective)
        entry["dense"] += dense
        entry["spike_calls"] += spiking.double()

    def reset(self) -> None:
        """Forget the counts so far (the hooks stay)."""
        self._totals.clear()

    def connections(self, samples: int) -> list[ConnectionOps]:
        """Per-sample operations of every connection that ran, in the order they first ran.

        Args:
            samples: number of samples in the counted forwards (NeuroBench divides by the batch size of the input).
        """
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if not self._totals:
            return []
        keys = list(self._totals)
        stacked = torch.stack(
            [
                torch.stack(
                    [
                        self._totals[key]["acs"],
                        self._totals[key]["macs"],
                        self._totals[key]["dense"],
                        self._totals[key]["spike_calls"],
                        self._totals[key]["nonzero_weights"],
                    ]
                )
                for key in keys
            ]
        ).tolist()
        result = []
        for key, (acs, macs, dense, spike_calls, nonzero) in zip(keys, stacked, strict=True):
            entry = self._totals[key]
            calls = entry["calls"]
            input_kind = "spikes" if spike_calls == calls else "real" if spike_calls == 0 else "mixed"
            result.append(
                ConnectionOps(
                    name=key,
                    kind=entry["kind"],
                    calls=calls,
                    effective_acs=acs / samples,
                    effective_macs=macs / samples,
                    dense=dense / samples,
                    input_kind=input_kind,
                    neurobench_visible=entry["visible"],
                    weights=entry["weights"],
                    nonzero_weights=int(nonzero),
                )
            )
        return result
