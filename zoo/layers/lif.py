"""Soft-reset LIF (and IF) neurons over time-first currents, and their ReLU twin; each records its activity.

    u_t = alpha_c u_{t-1} + I_t - th s_{t-1},    s_t = spike(u_t)   (signed: s_t in {-1, 0, +1})

one `zoo.kernels.lif_scan` per layer; alpha = 1 (not learnable) is the IF neuron. Spikes and currents are
[T, B, C, *spatial] (time first). Every neuron ends in a `zoo.layers.spike_record.SpikeRecord` named ``activity``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from zoo.kernels import lif_scan
from zoo.layers.spike_record import SpikeRecord

__all__ = ["LEAK_INIT", "LIFNeuron", "NeuronSettings", "ReLUNeuron"]

LEAK_INIT = 0.9
"""Initial value of every learnable leak (SpikGRU's original draws U(0.9, 0.9))."""


@dataclasses.dataclass(frozen=True)
class NeuronSettings:
    """What kind of neurons a network uses.

    Attributes:
        spiking: LIF/IF neurons (False: ReLU activations and plain pooling, the ANN twin).
        signed: {-1, 0, +1} spikes instead of {0, 1}.
        threshold: firing threshold th (also the soft-reset amount).
        gamma: surrogate-gradient sharpness.
    """

    spiking: bool = True
    signed: bool = False
    threshold: float = 1.0
    gamma: float = 10.0


class LIFNeuron(nn.Module):
    """Soft-reset LIF (or IF) neurons: currents [T, B, C, *spatial] -> spikes of the same shape.

    Args:
        channels: C; one learnable leak `alpha` per channel (initialised to `LEAK_INIT`), or none with
            ``learnable_leak=False`` (IF neuron: leak fixed to 1, not in the state dict).
        settings: spike kind, threshold and surrogate sharpness.
        penalty_terms: 1 if the spikes enter the spike penalty, 0 if only their rate is reported.
    """

    def __init__(self, channels: int, settings: NeuronSettings, learnable_leak: bool = True, penalty_terms: int = 1):
        super().__init__()
        self.settings = settings
        if learnable_leak:
            self.alpha = nn.Parameter(torch.full((channels,), LEAK_INIT))
        else:
            self.register_buffer("alpha", torch.ones(channels), persistent=False)
        self.activity = SpikeRecord(penalty_terms=penalty_terms, spikes=True)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        settings = self.settings
        spikes = lif_scan(current, self.alpha, settings.threshold, settings.signed, settings.gamma)
        return self.activity(spikes)

    def clamp_parameters(self) -> None:
        """Clamp a learnable leak to [0, 1] (SpikGRU's ``clamp()`` after every optimiser step)."""
        if isinstance(self.alpha, nn.Parameter):
            with torch.no_grad():
                self.alpha.clamp_(0.0, 1.0)


class ReLUNeuron(nn.Module):
    """ReLU on any tensor, with its mean activation recorded (the ANN twin of `LIFNeuron`)."""

    def __init__(self, penalty_terms: int = 1) -> None:
        super().__init__()
        self.activity = SpikeRecord(penalty_terms=penalty_terms, spikes=False)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.activity(torch.relu(current))
