"""Backend selection for the fused kernels: the pure-PyTorch reference or the CuPy CUDA implementation.

`backend="auto"` picks CuPy for CUDA tensors when CuPy imports and sees a device, and the reference
otherwise. The environment variable ``JELLYZOO_KERNEL_BACKEND`` (``auto``, ``torch`` or ``cupy``) replaces
``"auto"`` everywhere, which forces one implementation without touching model code; an explicit
``backend="torch"`` or ``"cupy"`` argument still wins over it.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

__all__ = ["BACKEND_ENV", "Backend", "cupy_status", "resolve_backend", "state_dtype"]

BACKEND_ENV = "JELLYZOO_KERNEL_BACKEND"
Backend = Literal["auto", "torch", "cupy"]
_CHOICES = ("auto", "torch", "cupy")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of neuron states for inputs of `dtype`: float32 for half precision, else the input's own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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


def resolve_backend(backend: str, *tensors: torch.Tensor) -> Literal["torch", "cupy"]:
    """The implementation to run for `tensors` given the requested `backend`.

    Raises:
        ValueError: `backend` (or the environment variable) is not one of auto/torch/cupy.
        RuntimeError: CuPy was forced but the tensors are not on a CUDA device or CuPy is not usable.
        TypeError: CuPy was forced for a dtype the kernels do not take (they take float32, float16, bfloat16).

    ``"auto"`` keeps float64 (or any other dtype the kernels do not take) on the reference.
    """
    if backend not in _CHOICES:
        raise ValueError(f"backend must be one of {_CHOICES}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if backend not in _CHOICES:
            raise ValueError(f"environment variable {BACKEND_ENV} must be one of {_CHOICES}, got {backend!r}")
    if backend == "torch":
        return "torch"
    on_cuda = all(tensor.is_cuda for tensor in tensors)
    kernel_dtypes = all(tensor.dtype in _KERNEL_DTYPES for tensor in tensors)
    if backend == "cupy":
        if not on_cuda:
            devices = sorted({str(tensor.device) for tensor in tensors})
            raise RuntimeError(f"backend 'cupy' needs CUDA tensors, got tensors on {', '.join(devices)}")
        usable, reason = cupy_status()
        if not usable:
            raise RuntimeError(f"backend 'cupy' was forced but is not usable: {reason}")
        if not kernel_dtypes:
            dtypes = sorted({str(tensor.dtype) for tensor in tensors})
            raise TypeError(f"backend 'cupy' takes float32, float16 and bfloat16 tensors, got {', '.join(dtypes)}")
        return "cupy"
    return "cupy" if on_cuda and kernel_dtypes and cupy_status()[0] else "torch"
