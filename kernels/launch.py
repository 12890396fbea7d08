"""Launch a `.cu` kernel by name with named arguments, checked against the signature the source declares.

Every kernel of `zoo.kernels` is one ``extern "C" __global__`` entry point per tensor dtype, declared once inside
an entry-point macro and instantiated for each dtype::

    #define SPIKE_ENTRY_POINTS(SUFFIX, T)
        extern "C" __global__ void spike_forward_##SUFFIX(const T* v, T* spikes, long long count, ...) { ... }
    SPIKE_ENTRY_POINTS(f32, float)
    SPIKE_ENTRY_POINTS(f16, __half)
    SPIKE_ENTRY_POINTS(bf16, __nv_bfloat16)

`kernel_signatures` reads those declarations; `launch` takes the arguments by parameter name, checks each one
(tensors: dtype, contiguity, device; ``long long``: a Python int; ``float``: a Python float; a pointer may be
None when the kernel does not touch it under the given flags) and runs one CUDA thread per element or neuron in
1-D blocks of `THREADS_PER_BLOCK`: through CuPy for CUDA tensors (`zoo.kernels.cupy_runtime`) and through the
same source compiled for the host for CPU tensors (`zoo.kernels.host`).

Buffers a kernel writes are allocated with `empty`: uninitialised, or NaN inside `strict_launches` (the CPU
test tier), so an element a kernel forgets to write shows up.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from zoo.kernels import cupy_runtime, host

__all__ = [
    "DTYPE_SUFFIX",
    "KERNEL_DIR",
    "STORAGE_CTYPE",
    "THREADS_PER_BLOCK",
    "Parameter",
    "empty",
    "kernel_signatures",
    "launch",
    "neurons_per_thread",
    "strict_launches",
]

KERNEL_DIR = Path(__file__).resolve().parent
THREADS_PER_BLOCK = 256
"""Block size of every jellyzoo kernel: 1-D launches, one thread per element or neuron."""

DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
"""Entry point ``<kernel>_<suffix>`` of each tensor dtype the kernels take."""

STORAGE_CTYPE = {torch.float32: "float", torch.float16: "__half", torch.bfloat16: "__nv_bfloat16"}
"""C type of the tensor dtype in the kernels (the entry-point macro's type parameter)."""

HostBuild = Literal["fast", "strict", "fused"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of an entry point: its name and C type, with ``T`` standing for the storage type."""

    name: str
    ctype: str
    """``"T*"``, ``"float*"``, ``"long long"`` or ``"float"`` (``const`` is kept apart)."""
    const: bool

    @functools.cached_property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")

    def concrete(self, dtype: torch.dtype) -> str:
        """The C declaration type for tensors of `dtype`, e.g. ``const __half*``."""
        ctype = STORAGE_CTYPE[dtype] + "*" if self.ctype == "T*" else self.ctype
        return f"const {ctype}" if self.const else ctype

    def tensor_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The tensor dtype this pointer takes when the kernel runs for `dtype`."""
        return dtype if self.ctype == "T*" else torch.float32


_MACRO = re.compile(r"^[ \t]*#define[ \t]+(\w+)\((\w+),[ \t]*(\w+)\)(.*)$", re.MULTILINE)
_ENTRY = r'extern\s+"C"\s+__global__\s+void\s+(\w+)_##{suffix}\s*\(([^)]*)\)'
_SCALAR_CTYPES = ("long long", "float")


def _parameter(declaration: str, type_parameter: str, where: str) -> Parameter:
    words = declaration.replace("__restrict__", " ").replace("*", " * ").split()
    const = "const" in words
    words = [word for word in words if word != "const"]
    if len(words) < 2:
        raise ValueError(f"{where}: cannot read the parameter declaration {declaration.strip()!r}")
    name, ctype = words[-1], " ".join(words[:-1]).replace(" *", "*")
    ctype = "T*" if ctype == f"{type_parameter}*" else ctype
    if ctype not in ("T*", "float*", *_SCALAR_CTYPES) or (const and ctype in _SCALAR_CTYPES):
        raise ValueError(
            f"{where}: parameter {name!r} has type {declaration.strip()!r}; entry points take pointers to the "
            f"storage type {type_parameter} or to float, long long and float (by value)"
        )
    return Parameter(name, ctype, const)


@functools.cache
def kernel_signatures(source_name: str) -> dict[str, tuple[Parameter, ...]]:
    """{kernel: parameters} of the entry points declared in `source_name` (a `.cu` file beside this module).

    Raises:
        ValueError: an entry-point macro is not instantiated for every dtype of `DTYPE_SUFFIX`, or a parameter
            has a type the launchers cannot pass.
    """
    text = (KERNEL_DIR / source_name).read_text().replace("\\\n", " ")
    signatures: dict[str, tuple[Parameter, ...]] = {}
    for macro, suffix, type_parameter, body in _MACRO.findall(text):
        entries = re.findall(_ENTRY.format(suffix=suffix), body)
        if not entries:
            continue
        instances = set(re.findall(rf"^[ \t]*{macro}\((\w+),[ \t]*([\w ]+?)\)", text, re.MULTILINE))
        expected = {(DTYPE_SUFFIX[dtype], STORAGE_CTYPE[dtype]) for dtype in DTYPE_SUFFIX}
        if instances != expected:
            raise ValueError(
                f"{source_name}: {macro} must be instantiated exactly as {sorted(expected)}, got {sorted(instances)}"
            )
        for kernel, declarations in entries:
            where = f"{source_name}: {kernel}"
            signatures[kernel] = tuple(_parameter(d, type_parameter, where) for d in declarations.split(","))
    if not signatures:
        raise ValueError(f"{source_name} declares no entry-point macro #define NAME(SUFFIX, T)")
    return signatures


@dataclass
class _Mode:
    strict: bool = False
    host_build: HostBuild = "fast"


_MODE = _Mode()


@contextlib.contextmanager
def strict_launches(host_build: HostBuild = "strict") -> Iterator[None]:
    """Within the block, `empty` fills with NaN and CPU launches run strictly with the given host build.

    Strict CPU launches (see `zoo.kernels.host.launch`) also check every argument against the compiled
    signature, surround every buffer with guard bytes and run each launch twice, in opposite thread orders.
    ``host_build="fused"`` uses the build that allows FMA contraction (as nvcc does by default).
    """
    saved = (_MODE.strict, _MODE.host_build)
    _MODE.strict, _MODE.host_build = True, host_build
    try:
        yield
    finally:
        _MODE.strict, _MODE.host_build = saved


def neurons_per_thread(device: torch.device) -> int:
    """Neurons one thread of `lif_scan.cu` owns on `device`: 1 on the GPU, the host build's count on the CPU."""
    return host.NEURONS_PER_THREAD[_MODE.host_build] if device.type == "cpu" else 1


def empty(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A buffer a kernel will write entirely: uninitialised, or NaN-filled under `strict_launches`."""
    if _MODE.strict:
        return torch.full(tuple(shape), math.nan, dtype=dtype, device=device)
    return torch.empty(tuple(shape), dtype=dtype, device=device)


@functools.cache
def _plan(source_name: str, kernel: str, dtype: torch.dtype) -> tuple[tuple[str, ...], tuple[Parameter, ...]]:
    """(parameter names, parameters) of `kernel` in `source_name`, looked up once per dtype."""
    parameters = kernel_signatures(source_name)[kernel]
    return tuple(parameter.name for parameter in parameters), parameters


def _check(kernel: str, parameter: Parameter, value: Any, dtype: torch.dtype) -> None:
    if parameter.is_pointer:
        if value is None or (
            isinstance(value, torch.Tensor) and value.dtype == parameter.tensor_dtype(dtype) and value.is_contiguous()
        ):
            return
    elif type(value) is (int if parameter.ctype == "long long" else float):
        return
    where = f"{kernel}: argument {parameter.name!r} ({parameter.concrete(dtype)})"
    if not parameter.is_pointer:
        kind = "a Python int" if parameter.ctype == "long long" else "a Python float"
        raise TypeError(f"{where} must be {kind}, got {type(value).__name__} {value!r}")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where} must be a tensor or None, got {type(value).__name__}")
    if value.dtype != parameter.tensor_dtype(dtype):
        raise TypeError(f"{where} must be {parameter.tensor_dtype(dtype)}, got {value.dtype}")
    raise ValueError(f"{where} must be contiguous, got strides {value.stride()} for shape {tuple(value.shape)}")


def launch(source_name: str, kernel: str, *, threads: int, dtype: torch.dtype, **arguments: Any) -> None:
    """Run entry point ``<kernel>_<dtype suffix>`` of `source_name` with one CUDA thread for each of `threads`.

    Args:
        source_name: the `.cu` file, e.g. ``"lif_scan.cu"``.
        kernel: the entry point without its dtype suffix, e.g. ``"lif_scan_forward"``.
        threads: elements or neurons (one thread each); nothing runs when 0.
        dtype: the storage dtype (float32, float16 or bfloat16) that selects the entry point.
        arguments: every parameter of the entry point by name.

    Raises:
        TypeError/ValueError: a parameter is missing or unknown, or an argument has the wrong kind, dtype or
            layout; the tensors are on different devices or on a device without a kernel runtime.
    """
    if dtype not in DTYPE_SUFFIX:
        raise TypeError(f"{kernel}: the kernels take {', '.join(map(str, DTYPE_SUFFIX))}; got {dtype}")
    names, parameters = _plan(source_name, kernel, dtype)
    if len(arguments) != len(names) or not all(name in arguments for name in names):
        missing, unknown = [n for n in names if n not in arguments], sorted(set(arguments) - set(names))
        raise TypeError(f"{kernel}: missing arguments {missing}, unknown arguments {unknown}; it takes {list(names)}")
    values = [arguments[name] for name in names]
    for parameter, value in zip(parameters, values, strict=True):
        _check(kernel, parameter, value, dtype)
    devices = {value.device for value in values if isinstance(value, torch.Tensor)}
    if len(devices) != 1:
        raise ValueError(f"{kernel}: the tensor arguments must share one device, got {sorted(map(str, devices))}")
    (device,) = devices
    if threads == 0:
        return
    grid = ((threads + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK,)
    block = (THREADS_PER_BLOCK,)
    function = f"{kernel}_{DTYPE_SUFFIX[dtype]}"
    if device.type == "cuda":
        cupy_runtime.launch(source_name, function, device, grid, block, values)
    elif device.type == "cpu":
        host.launch(source_name, function, grid, block, values, build=_MODE.host_build, strict=_MODE.strict)
    else:
        raise ValueError(f"{kernel}: no kernel runtime for tensors on {device}")
