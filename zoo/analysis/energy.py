"""Energy estimates from synaptic operation counts: E = ACs * E_AC + MACs * E_MAC.

An estimate, not a measurement: it prices only the synaptic operations (no memory traffic, no neuron updates, no
data movement on or off chip), with per-operation energies of 45 nm CMOS from M. Horowitz, "Computing's energy
problem (and what we can do about it)", ISSCC 2014 (the figures SpikingJelly 2.0's `estimate_simple_energy` uses).
A MAC is priced as one multiply plus one add, an AC as one add:

| preset | E_MAC (pJ) | E_AC (pJ) | Horowitz 2014 |
|---|---|---|---|
| fp32 | 4.6 | 0.9 | 3.7 pJ fp32 multiply + 0.9 pJ fp32 add |
| fp16 | 1.5 | 0.4 | 1.1 pJ fp16 multiply + 0.4 pJ fp16 add |
| int8 | 0.23 | 0.03 | 0.2 pJ 8-bit multiply + 0.03 pJ 8-bit add |

The dense figure prices every dense operation as a MAC: what the same network would cost on a dense (ANN-style)
accelerator that skips nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["ENERGY_PRESETS", "EnergyConstants", "EnergyEstimate", "estimate_energy"]

Preset = Literal["fp32", "fp16", "int8"]


@dataclasses.dataclass(frozen=True)
class EnergyConstants:
    """Energy per operation in picojoules, with where the numbers come from."""

    name: str
    mac_pj: float
    ac_pj: float
    source: str = "Horowitz, ISSCC 2014, 45 nm CMOS"


ENERGY_PRESETS: dict[str, EnergyConstants] = {
    "fp32": EnergyConstants("fp32", mac_pj=4.6, ac_pj=0.9),
    "fp16": EnergyConstants("fp16", mac_pj=1.5, ac_pj=0.4),
    "int8": EnergyConstants("int8", mac_pj=0.23, ac_pj=0.03),
}


@dataclasses.dataclass(frozen=True)
class EnergyEstimate:
    """Estimated synaptic energy per sample in picojoules (an estimate: see the module docstring)."""

    preset: str
    effective_pj: float
    dense_pj: float
    acs_pj: float
    macs_pj: float

    @property
    def ratio(self) -> float:
        """Dense energy over effective energy (how much skipping zeros saves; inf when nothing is left)."""
        return self.dense_pj / self.effective_pj if self.effective_pj else float("inf")


def estimate_energy(
    effective_acs: float, effective_macs: float, dense: float, preset: Preset = "fp32"
) -> EnergyEstimate:
    """Synaptic energy of `effective_acs` ACs and `effective_macs` MACs, and of `dense` MACs, with a preset.

    Raises:
        ValueError: unknown preset or a negative count.
    """
    if preset not in ENERGY_PRESETS:
        raise ValueError(f"energy preset must be one of {sorted(ENERGY_PRESETS)}, got {preset!r}")
    if min(effective_acs, effective_macs, dense) < 0:
        raise ValueError(
            f"operation counts must be >= 0, got ACs {effective_acs}, MACs {effective_macs}, dense {dense}"
        )
    constants = ENERGY_PRESETS[preset]
    acs_pj = effective_acs * constants.ac_pj
    macs_pj = effective_macs * constants.mac_pj
    return EnergyEstimate(preset, acs_pj + macs_pj, dense * constants.mac_pj, acs_pj, macs_pj)
