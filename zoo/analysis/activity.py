"""Per-layer spiking activity over one or more forwards, from the models' `SpikeRecord` details.

Run the forwards inside ``zoo.layers.spike_record.record_detail(model)`` and give each forward's
``spike_details(model)`` to `ActivityAccumulator.add`; `layers()` then returns one `LayerActivity` per record:

- rates are means over every counted (t, b) step and neuron: mean |s| (``measure="rate"``) or the fraction of
  non-zero entries (``measure="density"``), with the + and - parts of signed spikes separately (they sum to the rate);
  batches are weighted by their number of counted steps;
- the per-step profile is the mean over batches of each batch's per-step rate (steps beyond a batch's length do not
  count);
- per-neuron rates give the distribution, the silent fraction (never active) and the saturated fraction (active at
  every step; spikes and densities only);
- the raster is the first batch's first sample.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from zoo.layers.spike_record import SpikeDetail, SpikeRecord

__all__ = ["ActivityAccumulator", "LayerActivity"]


@dataclasses.dataclass
class LayerActivity:
    """Activity of one spiking layer (one `SpikeRecord`) over the accumulated forwards.

    Attributes:
        name: module name of the record.
        measure: ``"rate"`` (mean |s|) or ``"density"`` (fraction of non-zero entries).
        spikes: the record holds spikes in {-1, 0, +1} (False: real-valued activations or integer spike sums).
        neurons: entries of one step of one sample.
        steps: counted (t, b) steps over all forwards.
        rate, positive_rate, negative_rate: mean activity per neuron and step, and its parts from s > 0 and s < 0.
        nonzero: number of non-zero entries over the counted steps (NeuroBench's activation count).
        step_rates: mean activity at each time step, [T] (NaN where no batch reached that step).
        neuron_rates: mean activity of each neuron, flattened [neurons] (CPU).
        silent_fraction: neurons never active; saturated_fraction: neurons active at every step (None for real
            activations).
        synapses: connections each neuron drives per step, as the model declares it on the record (0: not given).
        raster: [T, K] activity of K neurons of the first sample of the first forward; raster_neurons: their indices.
    """

    name: str
    measure: str
    spikes: bool
    neurons: int
    steps: int
    rate: float
    positive_rate: float
    negative_rate: float
    nonzero: int
    step_rates: list[float]
    neuron_rates: torch.Tensor
    silent_fraction: float
    saturated_fraction: float | None
    synapses: float
    raster: torch.Tensor
    raster_neurons: list[int]

    def to_dict(self, histogram_bins: int = 20) -> dict[str, Any]:
        """JSON-ready summary: scalars, the step profile and a histogram of the per-neuron rates."""
        rates = self.neuron_rates.float()
        top = max(1.0, float(rates.max())) if rates.numel() else 1.0
        counts = torch.histc(rates, bins=histogram_bins, min=0.0, max=top).long().tolist()
        return {
            "name": self.name,
            "measure": self.measure,
            "spikes": self.spikes,
            "neurons": self.neurons,
            "steps": self.steps,
            "rate": self.rate,
            "positive_rate": self.positive_rate,
            "negative_rate": self.negative_rate,
            "nonzero": self.nonzero,
            "step_rates": [None if math.isnan(value) else value for value in self.step_rates],
            "neuron_rate_histogram": {
                "edges": [top * k / histogram_bins for k in range(histogram_bins + 1)],
                "counts": counts,
            },
            "neuron_rate_quantiles": _quantiles(rates),
            "silent_fraction": self.silent_fraction,
            "saturated_fraction": self.saturated_fraction,
            "synapses": self.synapses,
        }


def _quantiles(rates: torch.Tensor) -> dict[str, float]:
    if not rates.numel():
        return {}
    points = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    values = torch.quantile(rates.double(), points).tolist()
    return {"p10": values[0], "p50": values[1], "p90": values[2]}


class ActivityAccumulator:
    """Sums the `SpikeDetail` of every record of `model` over several forwards (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.records = {name: module for name, module in model.named_modules() if isinstance(module, SpikeRecord)}
        self._sums: dict[str, dict[str, Any]] = {}

    def add(self, details: dict[str, SpikeDetail]) -> None:
        """Add one forward's `spike_details(model)` (device tensors; no host synchronisation)."""
        for name, detail in details.items():
            steps = detail.steps.double()
            entry = self._sums.get(name)
            if entry is None:
                entry = self._sums[name] = {
                    "detail": detail,
                    "steps": torch.zeros_like(steps),
                    "positive": torch.zeros_like(steps),
                    "negative": torch.zeros_like(steps),
                    "nonzero": torch.zeros((), dtype=torch.int64, device=steps.device),
                    "neuron_rates": torch.zeros(detail.neuron_rates.shape, dtype=torch.float64, device=steps.device),
                    "step_profiles": [],
                }
            entry["steps"] += steps
            entry["positive"] += detail.positive_rate.double() * steps
            entry["negative"] += detail.negative_rate.double() * steps
            entry["nonzero"] += detail.nonzero
            entry["neuron_rates"] += detail.neuron_rates.double() * steps
            entry["step_profiles"].append(detail.step_rates.double())

    def layers(self) -> list[LayerActivity]:
        """One `LayerActivity` per record that ran, in the model's module order (one host synchronisation)."""
        names = [name for name in self.records if name in self._sums]
        if not names:
            return []
        scalars = (
            torch.stack(
                [
                    torch.stack(
                        [
                            self._sums[n]["steps"],
                            self._sums[n]["positive"],
                            self._sums[n]["negative"],
                            self._sums[n]["nonzero"].double(),
                        ]
                    )
                    for n in names
                ]
            )
            .cpu()
            .tolist()
        )
        layers = []
        for name, (steps, positive, negative, nonzero) in zip(names, scalars, strict=True):
            entry, record = self._sums[name], self.records[name]
            detail: SpikeDetail = entry["detail"]
            neuron_rates = (entry["neuron_rates"] / steps).flatten().cpu()
            layers.append(
                LayerActivity(
                    name=name,
                    measure=record.measure,
                    spikes=record.spikes,
                    neurons=detail.neurons,
                    steps=int(steps),
                    rate=(positive + negative) / steps,
                    positive_rate=positive / steps,
                    negative_rate=negative / steps,
                    nonzero=int(nonzero),
                    step_rates=_mean_profile(entry["step_profiles"]),
                    neuron_rates=neuron_rates,
                    silent_fraction=float((neuron_rates == 0).double().mean()),
                    saturated_fraction=float((neuron_rates >= 1).double().mean()) if detail.saturable else None,
                    synapses=float(record.synapses),
                    raster=detail.raster.float().cpu(),
                    raster_neurons=detail.raster_neurons.tolist(),
                )
            )
        return layers


def _mean_profile(profiles: list[torch.Tensor]) -> list[float]:
    """Mean over batches of per-step rates, padded with NaN to the longest; NaN steps do not count."""
    longest = max(profile.shape[0] for profile in profiles)
    padded = torch.full((len(profiles), longest), math.nan, dtype=torch.float64)
    for row, profile in enumerate(profiles):
        padded[row, : profile.shape[0]] = profile.cpu()
    return torch.nanmean(padded, dim=0).tolist()
