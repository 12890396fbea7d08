"""Compile the `.cu` sources beside this file with CuPy (NVRTC) and launch them on PyTorch's stream.

Modules are compiled once per (source file, device) and cached. Every launch goes to the current PyTorch
CUDA stream of the tensors' device, so kernels order correctly with surrounding PyTorch work and no host
synchronisation is introduced.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DTYPE_SUFFIX",
    "KERNEL_DIR",
    "THREADS_PER_BLOCK",
    "elementwise_grid",
    "kernel_name",
    "launch",
    "source_path",
]

KERNEL_DIR = Path(__file__).resolve().parent

DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
"""Each `.cu` file defines one ``extern "C"`` entry point per input dtype, named ``<kernel>_<suffix>``."""

_COMPILE_OPTIONS = ("--std=c++17", f"-I{KERNEL_DIR}")
"""C++17, and this folder on the include path for the shared headers (dtype_conversion.cuh, spike_functions.cuh)."""


THREADS_PER_BLOCK = 256
"""Block size of every jellyzoo kernel: 1-D launches, one thread per element or neuron."""


def elementwise_grid(count: int) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) of a 1-D launch with one thread for each of `count` elements or neurons."""
    return ((count + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK,), (THREADS_PER_BLOCK,)


def source_path(source_name: str) -> Path:
    """Path of a `.cu` source shipped with `zoo.kernels`."""
    return KERNEL_DIR / source_name


def kernel_name(base: str, dtype: torch.dtype) -> str:
    """Entry-point name of `base` for tensors of `dtype` (fp32, fp16 or bf16)."""
    if dtype not in DTYPE_SUFFIX:
        supported = ", ".join(str(d) for d in DTYPE_SUFFIX)
        raise TypeError(f"the CuPy kernels accept {supported}; got {dtype}")
    return f"{base}_{DTYPE_SUFFIX[dtype]}"


@functools.cache
def _module(source_name: str, device_index: int) -> Any:
    import cupy

    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=source_path(source_name).read_text(), options=_COMPILE_OPTIONS)
        module.compile()
    return module


def launch(
    source_name: str,
    function: str,
    device: torch.device,
    grid: tuple[int, ...],
    block: tuple[int, ...],
    args: Sequence[Any],
    shared_mem: int = 0,
) -> None:
    """Launch `function` from `source_name` on `device` with PyTorch's current stream.

    `args` may hold tensors (passed as device pointers), Python ints (passed as ``long long``) and
    Python floats (passed as ``float``); the CUDA signatures use exactly these types.
    """
    import cupy

    kernel = _module(source_name, device.index).get_function(function)
    converted = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            converted.append(np.uint64(arg.data_ptr()))
        elif isinstance(arg, bool):
            raise TypeError("pass flags to kernels as ints")
        elif isinstance(arg, int):
            converted.append(np.int64(arg))
        elif isinstance(arg, float):
            converted.append(np.float32(arg))
        else:
            raise TypeError(f"unsupported kernel argument of type {type(arg).__name__}")
    stream = torch.cuda.current_stream(device)
    with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(stream.cuda_stream, device.index):
        kernel(grid, block, tuple(converted), shared_mem=shared_mem)
