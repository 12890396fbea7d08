"""Fast core of jellyzoo (installed as `zoo.kernels`).

Every op follows one shape, in one module per op and in this order: input checks, a pure-PyTorch reference
(the test oracle and the fallback), the launches of its `.cu` kernels (`zoo.kernels.launch`, named arguments
checked against the source's signature), its `torch.library` operators ``jellyzoo::<op>_forward`` /
``jellyzoo::<op>_backward`` with fake implementations and registered autograd, and one dispatch function:

- `spike`, `signed_spike`: binary {0, 1} and signed {-1, 0, +1} spikes with the SpikGRU surrogates.
- `lif_scan`: multi-step LIF with per-channel leak and soft reset, time first `[T, B, C, *spatial]`.
- `spikgru_scan`: the SpikGRU 1-/2-gate recurrence given hoisted input projections `[T, B, (gates+1)H]`.
- `sparch_scan`: the sparch LIF / RLIF / adLIF / RadLIF neurons and the non-spiking readout, `[T, B, H]`.

Backends (see `zoo.kernels.backend`; ``backend="auto"|"torch"|"cupy"|"cpu"``, environment variable
``JELLYZOO_KERNEL_BACKEND``): the reference, the kernels through CuPy on CUDA, and the same kernels compiled
for the host (`zoo.kernels.host`) on CPU.
"""

from zoo.kernels.backend import BACKEND_ENV, cpu_status, cupy_status, resolve_backend
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
    "cpu_status",
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
