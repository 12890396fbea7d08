"""Spike recording: one layer that models put after each spiking layer, and the functions that read it.

`SpikeRecord` is the identity on its input ``x: [T, B, *neurons]`` (time first; any neuron shape) and keeps, from
its last forward, 0-d tensors on the input's device (never copied to the host, so recording adds no
synchronisation; the caller reads many at once, e.g. one ``torch.stack(...).tolist()`` per logging interval):

- ``rate``: the layer's activity, with autograd history.
  ``measure="rate"``: mean |x| (a signed spike -1 counts as one event; for real activations, mean |activation|).
  ``measure="density"``: fraction of non-zero entries, as StereoSpike's paper measures its integer-valued tensors
  (spike sums 0..3), where mean |x| would count spikes rather than active sites.
- ``penalty``: the layer's spike-penalty term mean(x^2) with autograd history, only when ``penalty_terms > 0``.
  For spikes in {-1, 0, +1} (``spikes=True``, ``measure="rate"``) x^2 = |x|, so the record reuses the rate r and
  forms 2r - r.detach(): the value of mean(x^2) and exactly its gradient (2 sign(x) / N), without a second
  reduction. Otherwise (real activations, integer spike sums) mean(x^2) is computed directly.

``valid`` ([T, B] bool, optional) marks the real steps of padded sequences: padded steps are left out of every
mean (first the per-neuron mean over the valid (t, b), then the mean over neurons; `zoo.layers.valid_steps`).

The functions:

- ``firing_rates(model, detach=True)`` -> ``{module name: rate}`` of every record that has run;
- ``averaged_over_calls(model)``: a block in which records may run once per time step (a single-step loop); on
  exit each keeps the rate and penalty of the whole sequence;
- ``spike_penalty(model, weighting)`` -> 0.5 * sum over the records with ``penalty_terms > 0`` of
  weight_l * penalty_l. ``"uniform"``: weight_l = penalty_terms_l (SpikGRU's ``loss_act``; StereoSpike's eq. 5,
  sum of mean(s^2) / 2); ``"synapses"``: weight_l = penalty_terms_l * synapses_l normalised to mean 1 over the
  penalised layers, so the penalty follows the expected synaptic operations sum_l rate_l * S_l (``synapses`` =
  connections each neuron of the layer drives per time step, set by the model that knows the consumers).

Detail for firing-rate reports (off by default; costs one attribute check per forward when off). Inside
``with record_detail(model):`` (or with ``record.detail = True``) every record also keeps a `SpikeDetail`
(detached, on the device, no host sync): the + and - parts of the rate, the per-step profile [T], the per-neuron
rates [*neurons] (silent and saturated fractions follow from them), the neuron count, the number of (t, b) steps
counted, and a raster of a few neurons of the first sample. ``spike_details(model)`` collects them::

    with record_detail(model, raster_neurons=16):
        model(inputs)
    details = spike_details(model)          # {layer name: SpikeDetail}
    details["head.layers.0.activity"].silent_fraction()
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from zoo.layers.valid_steps import valid_mean

__all__ = [
    "Measure",
    "PenaltyWeighting",
    "SpikeDetail",
    "SpikeRecord",
    "averaged_over_calls",
    "firing_rates",
    "record_detail",
    "spike_details",
    "spike_penalty",
]

Measure = Literal["rate", "density"]
PenaltyWeighting = Literal["uniform", "synapses"]

DEFAULT_RASTER_NEURONS = 16


@dataclasses.dataclass
class SpikeDetail:
    """What one `SpikeRecord` saw in its last forward with detail on (detached device tensors).

    The measured activity a is |x| (``measure="rate"``) or [x != 0] (``"density"``); all means skip padded steps.

    Attributes:
        positive_rate: 0-d, mean of a over the entries with x > 0 counted over all entries (the +1 spikes' rate).
        negative_rate: 0-d, the same for x < 0 (the -1 spikes' rate); positive + negative = rate.
        step_rates: [T], mean of a over the valid samples and all neurons at each step (NaN at a step where no
            sample is valid).
        neuron_rates: [*neurons], mean of a over the valid (t, b) of each neuron.
        neurons: number of neurons (entries of one step of one sample).
        steps: 0-d int, number of (t, b) steps counted (the weight for averaging over batches).
        nonzero: 0-d int64, number of entries x != 0 over the counted steps (exact; NeuroBench's activation count).
        raster: [T, K] the input x of K neurons of sample 0 at every step (padded steps included).
        raster_neurons: [K] int, flat indices of those neurons in the neuron shape (evenly spaced).
        saturable: whether a neuron rate of 1 means "active at every step" (spikes, or the density measure).
    """

    positive_rate: torch.Tensor
    negative_rate: torch.Tensor
    step_rates: torch.Tensor
    neuron_rates: torch.Tensor
    neurons: int
    steps: torch.Tensor
    nonzero: torch.Tensor
    raster: torch.Tensor
    raster_neurons: torch.Tensor
    saturable: bool

    def silent_fraction(self) -> torch.Tensor:
        """0-d: fraction of neurons with no activity over all counted steps."""
        return (self.neuron_rates == 0).float().mean()

    def saturated_fraction(self) -> torch.Tensor:
        """0-d: fraction of neurons active at every counted step (rate >= 1).

        Raises:
            ValueError: for real-valued activations, where a rate of 1 has no meaning.
        """
        if not self.saturable:
            raise ValueError("saturation is defined for spikes and densities, not for real-valued activations")
        return (self.neuron_rates >= 1).float().mean()


class SpikeRecord(nn.Module):
    """Identity on x [T, B, *neurons] that records its rate (and penalty term, and optional detail).

    Args:
        measure: "rate" (mean |x|) or "density" (fraction of non-zero entries).
        penalty_terms: how many times this tensor enters `spike_penalty` (0: reported as a rate only).
        spikes: x holds spikes in {-1, 0, +1} (False: real-valued activations or integer spike sums).
        synapses: connections each neuron drives per time step and sample (for ``weighting="synapses"``).

    Attributes (after a forward): ``rate`` and, with ``penalty_terms``, ``penalty`` (0-d tensors with autograd
    history); with ``detail = True``, ``last_detail`` (`SpikeDetail`).
    """

    def __init__(
        self, measure: Measure = "rate", penalty_terms: int = 0, spikes: bool = True, synapses: float = 0.0
    ) -> None:
        super().__init__()
        if measure not in ("rate", "density"):
            raise ValueError(f"SpikeRecord: measure must be 'rate' or 'density', got {measure!r}")
        if penalty_terms < 0:
            raise ValueError(f"SpikeRecord: penalty_terms must be >= 0, got {penalty_terms}")
        self.measure = measure
        self.penalty_terms = penalty_terms
        self.spikes = spikes
        self.synapses = synapses
        self.detail = False
        self.raster_neurons = DEFAULT_RASTER_NEURONS
        self.rate: torch.Tensor | None = None
        self.penalty: torch.Tensor | None = None
        self.last_detail: SpikeDetail | None = None
        self._calls: list[tuple[torch.Tensor, torch.Tensor | None, int]] | None = None  # see averaged_over_calls

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: [T, B, *neurons]; valid: optional [T, B] bool mask of the real steps. Returns x unchanged."""
        activity = x.abs() if self.measure == "rate" else (x != 0).float()
        if valid is None:
            self.rate = activity.mean()
        else:
            self.rate = valid_mean(activity, valid).mean()
        if self.penalty_terms:
            if self.spikes and self.measure == "rate":
                self.penalty = 2 * self.rate - self.rate.detach()
            elif valid is None:
                self.penalty = x.square().mean()
            else:
                self.penalty = valid_mean(x.square(), valid).mean()
        if self._calls is not None:
            self._calls.append((self.rate, self.penalty, x.numel()))
        if self.detail:
            with torch.no_grad():
                self.last_detail = self._detail(x.detach(), activity.detach(), valid)
        elif self.last_detail is not None:
            self.last_detail = None
        return x

    def _detail(self, x: torch.Tensor, activity: torch.Tensor, valid: torch.Tensor | None) -> SpikeDetail:
        activity = activity.float()
        positive = torch.where(x > 0, activity, 0.0)
        negative = torch.where(x < 0, activity, 0.0)
        per_step = activity.flatten(2).mean(-1)  # [T, B]
        if valid is None:
            step_rates = per_step.mean(1)
            steps = torch.full((), x.shape[0] * x.shape[1], device=x.device)
        else:
            step_rates = (per_step * valid).sum(1) / valid.sum(1)
            steps = valid.sum()
        nonzero = (x != 0).flatten(2).sum(-1)  # [T, B]
        nonzero = nonzero.sum() if valid is None else (nonzero * valid).sum()
        flat = x[:, 0].flatten(1)
        count = min(self.raster_neurons, flat.shape[1])
        chosen = torch.linspace(0, flat.shape[1] - 1, count, device=x.device).round().long()
        return SpikeDetail(
            positive_rate=valid_mean(positive, valid).mean(),
            negative_rate=valid_mean(negative, valid).mean(),
            step_rates=step_rates,
            neuron_rates=valid_mean(activity, valid),
            neurons=flat.shape[1],
            steps=steps,
            nonzero=nonzero,
            raster=flat[:, chosen],
            raster_neurons=chosen,
            saturable=self.spikes or self.measure == "density",
        )

    def extra_repr(self) -> str:
        return (
            f"measure={self.measure!r}, penalty_terms={self.penalty_terms}, spikes={self.spikes}, "
            f"synapses={self.synapses:g}"
        )


def _records(model: nn.Module) -> Iterator[tuple[str, SpikeRecord]]:
    return ((name, module) for name, module in model.named_modules() if isinstance(module, SpikeRecord))


def firing_rates(model: nn.Module, detach: bool = True) -> dict[str, torch.Tensor]:
    """``{module name: rate}`` of every `SpikeRecord` in `model` from its last forward (0-d device tensors).

    Records that have not run yet are left out; a model without records gives ``{}``. ``detach=False`` keeps the
    autograd history (for regularisers of one's own).
    """
    return {
        name: record.rate.detach() if detach else record.rate
        for name, record in _records(model)
        if record.rate is not None
    }


def spike_penalty(model: nn.Module, weighting: PenaltyWeighting = "uniform") -> torch.Tensor:
    """0.5 * sum over the penalised records of (weight * mean x^2) from `model`'s last forward (0-d tensor).

    See the module docstring for the weightings.

    Raises:
        ValueError: an unknown weighting, or ``"synapses"`` with a penalised record without a synapse count.
        RuntimeError: `model` has no penalised record (e.g. an ANN), or one has not run yet.
    """
    if weighting not in ("uniform", "synapses"):
        raise ValueError(f"spike penalty weighting must be 'uniform' or 'synapses', got {weighting!r}")
    records = [(name, record) for name, record in _records(model) if record.penalty_terms]
    if not records:
        raise RuntimeError(
            f"spike_penalty: {type(model).__name__} has no spiking layer with a penalty term (no SpikeRecord with "
            "penalty_terms > 0; an ANN has none)"
        )
    not_run = [name for name, record in records if record.penalty is None]
    if not_run:
        raise RuntimeError(f"spike_penalty needs a forward pass first; layers without activity: {not_run[:5]}")
    if weighting == "uniform":
        weights = [float(record.penalty_terms) for _, record in records]
    else:
        synapses = [record.synapses * record.penalty_terms for _, record in records]
        missing = [name for name, record in records if record.synapses <= 0]
        if missing:
            raise ValueError(f"spike penalty weighting 'synapses': layers without a synapse count: {missing[:5]}")
        mean = sum(synapses) / sum(record.penalty_terms for _, record in records)
        weights = [count / mean for count in synapses]
    total = sum(weight * record.penalty for weight, (_, record) in zip(weights, records, strict=True))
    return 0.5 * total


@contextlib.contextmanager
def record_detail(model: nn.Module, raster_neurons: int = DEFAULT_RASTER_NEURONS) -> Iterator[nn.Module]:
    """Turn on detail recording in every `SpikeRecord` of `model` for the forwards inside the block.

    The details stay readable (`spike_details`) after the block; the previous settings are restored on exit.
    """
    if raster_neurons < 1:
        raise ValueError(f"record_detail: raster_neurons must be >= 1, got {raster_neurons}")
    records = [record for _, record in _records(model)]
    previous = [(record.detail, record.raster_neurons) for record in records]
    for record in records:
        record.detail, record.raster_neurons = True, raster_neurons
    try:
        yield model
    finally:
        for record, (detail, raster) in zip(records, previous, strict=True):
            record.detail, record.raster_neurons = detail, raster


@contextlib.contextmanager
def averaged_over_calls(model: nn.Module) -> Iterator[nn.Module]:
    """Let every `SpikeRecord` of `model` run several times within one forward, e.g. a loop over single time steps.

    On exit each record's ``rate`` and ``penalty`` become the means over its calls inside the block, weighted by
    their element counts: what one call on the whole sequence records (for calls without a ``valid`` mask).
    Details (`record_detail`) describe the last call.
    """
    records = [record for _, record in _records(model)]
    for record in records:
        record._calls = []
    try:
        yield model
    finally:
        for record in records:
            calls, record._calls = record._calls, None
            if calls:
                weights = calls[0][0].new_tensor([count for _, _, count in calls])
                record.rate = (torch.stack([rate for rate, _, _ in calls]) * weights).sum() / weights.sum()
                if record.penalty is not None:
                    penalties = torch.stack([penalty for _, penalty, _ in calls])
                    record.penalty = (penalties * weights).sum() / weights.sum()


def spike_details(model: nn.Module) -> dict[str, SpikeDetail]:
    """``{module name: SpikeDetail}`` of every record whose last forward ran with detail on."""
    return {name: record.last_detail for name, record in _records(model) if record.last_detail is not None}
