"""Spike-count regulariser: per-layer mean(s^2) recorded on device, summed uniformly or by synaptic operations.

`ActivityRecord` is a `FiringRate` (so `firing_rates(model)` reports it) that also keeps the layer's spike-loss
term mean(s^2) with autograd history. `spike_count_loss(model)` adds the terms of every record in the model:

- ``weighting="uniform"``: 0.5 * sum_l mean(s_l^2), every layer weighted alike (SpikGRU's ``loss_act``);
- ``weighting="synapses"``: each term is weighted by the synaptic connections the layer's neurons drive per
  time step (S_l, the dense operation count of the layers that consume its spikes), normalised to mean 1 over
  the regularised layers, so the loss is proportional to the expected synaptic operations sum_l rate_l * S_l.

For spikes in {-1, 0, +1}, s^2 = |s|, so the record reuses the firing rate r and forms 2r - r.detach(): the same
value and exactly the gradient of mean(s^2) (2 sign(s) / N), without a second reduction over the spikes.
Non-spiking activations (the ReLU twins of spiking models) compute mean(x^2) directly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo.layers.firing import FiringRate

__all__ = ["ActivityRecord", "SpikeLossWeighting", "spike_count_loss"]

SpikeLossWeighting = Literal["uniform", "synapses"]


class ActivityRecord(FiringRate):
    """Identity on activations (any shape) recording mean |s| (firing rate) and mean s^2 (spike-loss term).

    Args:
        spike_loss_terms: how many times this tensor enters the spike loss (0: reported as a rate only).
        spikes: the input holds spikes in {-1, 0, +1} (False: real-valued activations, e.g. ReLU outputs).
        synapses: connections driven by this layer's neurons per time step and sample (for
            ``weighting="synapses"``); set by the model that knows the consumers.
    """

    def __init__(self, spike_loss_terms: int = 1, spikes: bool = True, synapses: float = 0.0) -> None:
        super().__init__()
        self.spike_loss_terms = spike_loss_terms
        self.spikes = spikes
        self.synapses = synapses
        self.square_mean: torch.Tensor | None = None

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        super().forward(activations)
        if self.spike_loss_terms:
            if self.spikes:
                self.square_mean = 2 * self.rate - self.rate.detach()
            else:
                self.square_mean = activations.square().mean()
        return activations

    def extra_repr(self) -> str:
        return f"spike_loss_terms={self.spike_loss_terms}, spikes={self.spikes}, synapses={self.synapses:g}"


def spike_count_loss(model: nn.Module, weighting: SpikeLossWeighting = "uniform") -> torch.Tensor:
    """0.5 * sum over the regularised layers of (weight * mean s^2) from `model`'s last forward (0-d tensor).

    Raises:
        ValueError: unknown weighting, no regularised layer, a layer that has not run, or zero synapse counts.
    """
    if weighting not in ("uniform", "synapses"):
        raise ValueError(f"spike loss weighting must be 'uniform' or 'synapses', got {weighting!r}")
    records = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, ActivityRecord) and module.spike_loss_terms
    ]
    if not records:
        raise ValueError(f"{type(model).__name__} has no spike-regularised layer (no ActivityRecord with terms)")
    not_run = [name for name, module in records if module.square_mean is None]
    if not_run:
        raise ValueError(f"spike loss needs a forward pass first; layers without activity: {not_run[:5]}")
    if weighting == "uniform":
        weights = [float(module.spike_loss_terms) for _, module in records]
    else:
        synapses = [module.synapses * module.spike_loss_terms for _, module in records]
        if min(synapses) <= 0:
            missing = [name for (name, module) in records if module.synapses <= 0]
            raise ValueError(f"spike loss weighting 'synapses': layers without a synapse count: {missing[:5]}")
        mean = sum(synapses) / sum(module.spike_loss_terms for _, module in records)
        weights = [count / mean for count in synapses]
    total = sum(weight * module.square_mean for weight, (_, module) in zip(weights, records, strict=True))
    return 0.5 * total
