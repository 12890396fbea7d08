"""Backend selection for the fused kernels: the pure-PyTorch reference, CuPy on CUDA, or the host build on CPU.

- ``"torch"``: the reference (a Python loop over time; differentiable with plain autograd), any device/dtype;
- ``"cupy"``: the `.cu` kernels compiled by NVRTC through CuPy, for CUDA tensors;
- ``"cpu"``: the same `.cu` kernels compiled for the host with g++ (``-O3``, OpenMP; `zoo.kernels.host`);
- ``"auto"``: CuPy for CUDA tensors when CuPy imports and sees a device, the host build for CPU (and meta)
  tensors when a C++ compiler is available and every kernel source builds, the reference otherwise; float64
  (or any dtype the kernels do not take) stays on the reference.

The environment variable ``JELLYZOO_KERNEL_BACKEND`` (``auto``, ``torch``, ``cupy`` or ``cpu``) replaces
``"auto"`` everywhere, which forces one implementation without touching model code; an explicit backend
argument still wins over it. "cupy" and "cpu" run the same `torch.library` operators (``jellyzoo::*``), whose
launches go to CuPy or to the host build by the tensors' device (`zoo.kernels.launch`).
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

from zoo.kernels import host

__all__ = ["BACKEND_ENV", "Backend", "cpu_status", "cupy_status", "needs_saving", "resolve_backend", "state_dtype"]

BACKEND_ENV = "JELLYZOO_KERNEL_BACKEND"
Backend = Literal["auto", "torch", "cupy", "cpu"]
_CHOICES = ("auto", "torch", "cupy", "cpu")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of neuron states for inputs of `dtype`: float32 for half precision, else the input's own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def needs_saving(*tensors: torch.Tensor | None) -> bool:
    """The one rule of every kernel op for what to keep for backward: keep it only when autograd is recording
    and some input needs a gradient (so inference under no_grad, or with frozen inputs, stores nothing)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@torch.compiler.assume_constant_result  # torch.compile takes the probe's answer as a constant
@functools.cache
def cupy_status() -> tuple[bool, str]:
    """(usable, reason): whether CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
    except Exception as error:  # ImportError, or a CUDA library mismatch raised at import time
        return False, f"CuPy does not import ({type(error).__name__}: {error}); install jellyzoo[cuda13] or [cuda12]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # cupy raises CUDARuntimeError when there is no driver
        return False, f"CuPy sees no CUDA device ({type(error).__name__}: {error})"
    if count == 0:
        return False, "CuPy sees no CUDA device"
    return True, f"CuPy {cupy.__version__} with {count} device(s)"


@torch.compiler.assume_constant_result
def cpu_status() -> tuple[bool, str]:
    """(usable, reason): whether the kernels build for the host (compiled once, then loaded from the cache)."""
    return host.build_status("fast")


def _devices(tensors: tuple[torch.Tensor, ...]) -> str:
    return ", ".join(sorted({str(tensor.device) for tensor in tensors}))


def resolve_backend(backend: str, *tensors: torch.Tensor) -> Literal["torch", "cupy", "cpu"]:
    """The implementation to run for `tensors` given the requested `backend`.

    Raises:
        ValueError: `backend` (or the environment variable) is not one of auto/torch/cupy/cpu.
        RuntimeError: CuPy (or cpu) was forced but the tensors are not on a CUDA (CPU) device, or it is not usable.
        TypeError: a kernel backend was forced for a dtype the kernels do not take (float32, float16, bfloat16).
    """
    if backend not in _CHOICES:
        raise ValueError(f"backend must be one of {_CHOICES}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if backend not in _CHOICES:
            raise ValueError(f"environment variable {BACKEND_ENV} must be one of {_CHOICES}, got {backend!r}")
    if backend == "torch":
        return "torch"
    device_types = {"cuda" if tensor.is_cuda else tensor.device.type for tensor in tensors}
    kernel_dtypes = all(tensor.dtype in _KERNEL_DTYPES for tensor in tensors)
    if backend in ("cupy", "cpu"):
        wanted = {"cupy": "cuda", "cpu": "cpu"}[backend]
        if device_types - {wanted, "meta"} or not device_types:
            raise RuntimeError(
                f"backend {backend!r} needs {wanted.upper()} tensors, got tensors on {_devices(tensors)}"
            )
        usable, reason = cupy_status() if backend == "cupy" else cpu_status()
        if device_types != {"meta"} and not usable:
            raise RuntimeError(f"backend {backend!r} was forced but is not usable: {reason}")
        if not kernel_dtypes:
            dtypes = ", ".join(sorted({str(tensor.dtype) for tensor in tensors}))
            raise TypeError(f"backend {backend!r} takes float32, float16 and bfloat16 tensors, got {dtypes}")
        return backend
    if not kernel_dtypes or len(device_types) != 1:
        return "torch"
    (device_type,) = device_types
    if device_type == "cuda" and cupy_status()[0]:
        return "cupy"
    if device_type == "meta" or device_type == "cpu" and cpu_status()[0]:
        return "cpu"
    return "torch"
