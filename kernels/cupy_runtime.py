"""Compile the `.cu` sources beside this file with CuPy (NVRTC) and launch them on PyTorch's stream.

Modules are compiled once per (source file, device) and cached. Every launch goes to the current PyTorch
CUDA stream of the tensors' device, so kernels order correctly with surrounding PyTorch work and no host
synchronisation is introduced. Callers go through `zoo.kernels.launch.launch`, which checks the arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["launch"]

KERNEL_DIR = Path(__file__).resolve().parent
_COMPILE_OPTIONS = ("--std=c++17", f"-I{KERNEL_DIR}")
"""C++17, and this folder on the include path for the shared headers (dtype_conversion.cuh, spike_functions.cuh)."""


@functools.cache
def _module(source_name: str, device_index: int) -> Any:
    import cupy

    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=(KERNEL_DIR / source_name).read_text(), options=_COMPILE_OPTIONS)
        module.compile()
    return module


def launch(
    source_name: str,
    function: str,
    device: torch.device,
    grid: tuple[int, ...],
    block: tuple[int, ...],
    args: Sequence[Any],
) -> None:
    """Launch entry point `function` of `source_name` on `device` with PyTorch's current stream.

    `args` are in declaration order: tensors (passed as device pointers), None (a null pointer), Python ints
    (``long long``) and Python floats (``float``).
    """
    import cupy

    kernel = _module(source_name, device.index).get_function(function)
    converted = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            converted.append(np.uint64(arg.data_ptr()))
        elif arg is None:
            converted.append(np.uint64(0))
        elif isinstance(arg, int):
            converted.append(np.int64(arg))
        else:
            converted.append(np.float32(arg))
    stream = torch.cuda.current_stream(device)
    with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(stream.cuda_stream, device.index):
        kernel(grid, block, tuple(converted))
