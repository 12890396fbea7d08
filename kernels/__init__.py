"""Fast core of jellyzoo (installed as `zoo.kernels`).

Each op has a pure-PyTorch reference (the test oracle and the CPU path), a CuPy CUDA implementation in a
`.cu` file wrapped in a `torch.autograd.Function`, and one dispatch function users call:

- `spike`, `signed_spike`: binary {0, 1} and signed {-1, 0, +1} spikes with the SpikGRU surrogates.
- `lif_scan`: multi-step LIF with per-channel leak and soft reset, time first `[T, B, C, *spatial]`.
- `spikgru_scan`: the SpikGRU 1-/2-gate recurrence given hoisted input projections `[T, B, (gates+1)H]`.

Backend selection: see `zoo.kernels.backend` (``backend="auto"|"torch"|"cupy"``, environment variable
``JELLYZOO_KERNEL_BACKEND``).
"""

from zoo.kernels.backend import BACKEND_ENV, cupy_status, resolve_backend
from zoo.kernels.lif_scan import lif_scan, lif_scan_reference
from zoo.kernels.sparch_scan import sparch_scan, sparch_scan_reference
from zoo.kernels.spike import (
    signed_spike,
    signed_spike_reference,
    signed_spike_surrogate,
    spike,
    spike_reference,
    spike_surrogate,
)
from zoo.kernels.spikgru_scan import spikgru_scan, spikgru_scan_reference

__all__ = [
    "BACKEND_ENV",
    "cupy_status",
    "lif_scan",
    "lif_scan_reference",
    "resolve_backend",
    "signed_spike",
    "signed_spike_reference",
    "signed_spike_surrogate",
    "sparch_scan",
    "sparch_scan_reference",
    "spike",
    "spike_reference",
    "spike_surrogate",
    "spikgru_scan",
    "spikgru_scan_reference",
]
