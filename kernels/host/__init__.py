"""Compile the kernels' `.cu` sources for the host with g++ and run them on CPU tensors.

The sources are compiled unmodified: `cuda_host_runtime.h` (force-included) maps the CUDA keywords and built-ins
the kernels use to host C++, `cuda_fp16.h` / `cuda_bf16.h` here stand in for CUDA's with round-to-nearest-even
conversions, and anything else a kernel might use does not exist, so such a kernel fails to build here. For every
``extern "C" __global__`` entry point the build generates a wrapper ``jz_launch_<entry>(cells, blocks,
threads, order, workers)`` (the arguments packed in 8-byte cells) that runs the body once per CUDA thread of
the 1-D grid (`grid.h`), with denormals flushed to zero as ``-ftz=true`` does on the GPU. The wrappers are
called through ctypes.

Three builds of each source (flags in `BUILD_FLAGS`):
- ``fast``: ``-O3``, OpenMP over blocks, no FMA contraction, 16 neurons per `lif_scan` thread: the ``cpu``
  backend;
- ``strict``: no FMA contraction, one host thread: the CPU test tier, with the strict launcher (the compiled
  signature checked, guard bytes around every buffer, two runs in opposite thread orders that must agree);
- ``fused``: FMA contraction allowed, as nvcc does by default; the ``__f*_rn`` operations stay unfused.

Compiled libraries are cached under ``$JELLYZOO_KERNEL_CACHE`` (default ``~/.cache/jellyzoo/host-kernels``),
keyed by a hash of the sources, the headers, the flags and the compiler's version, so later runs load them.
The compiler is ``$CXX`` or ``g++``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BUILD_FLAGS",
    "CACHE_ENV",
    "HostBuildError",
    "HostLaunchError",
    "HAS_FMA",
    "HostLibrary",
    "NEURONS_PER_THREAD",
    "build_status",
    "compiler",
    "launch",
    "library",
]

HOST_DIR = Path(__file__).resolve().parent
KERNEL_DIR = HOST_DIR.parent
CACHE_ENV = "JELLYZOO_KERNEL_CACHE"

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _x86_has_fma() -> bool:
    """Whether this x86 CPU executes FMA instructions (an -mfma build would crash on one that does not)."""
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and any(
        line.startswith("flags") and " fma " in f"{line} " for line in cpuinfo.read_text().splitlines()
    )


HAS_FMA = _x86_has_fma() if _X86 else platform.machine().lower() in ("aarch64", "arm64")
"""Whether the ``fused`` build can contract a * b + c into a fused multiply-add on this machine."""
_COMMON_FLAGS = (
    "-std=c++17",
    "-fPIC",
    "-shared",
    "-Wl,-z,defs",
    "-fvisibility=hidden",
    "-fno-fast-math",
    "-Wall",
    "-Wextra",
    "-Werror",
)
BUILD_FLAGS: dict[str, tuple[str, ...]] = {
    "fast": ("-O3", "-ffp-contract=off", "-fopenmp", "-DJZ_NEURONS_PER_THREAD=16"),
    "strict": ("-O1", "-ffp-contract=off"),
    "fused": ("-O2", "-ffp-contract=fast", "-DJZ_FP_CONTRACT", *(("-mfma",) if _X86 and HAS_FMA else ())),
}
NEURONS_PER_THREAD = {"fast": 16, "strict": 1, "fused": 1}
"""Neurons one thread of `lif_scan.cu` walks through time in each build (1 as on the GPU; runs of adjacent
neurons in the fast build, for a time-major walk over memory)."""
"""g++ flags of each build besides the common ones (C++17, shared with no undefined symbol, warnings as errors,
no fast-math; only the launch wrappers exported, so the kernels inline into the grid loop)."""

GUARD_BYTES = 64
_GUARD_PATTERNS = (0xFF, 0x7F)
"""Guard bytes of the first and second strict run: a NaN and a huge finite float, so reads outside a buffer
change the results between the runs and writes outside it change the guard."""

_CTYPE_DTYPES = {"float": torch.float32, "__half": torch.float16, "__nv_bfloat16": torch.bfloat16}
_ENTRY = re.compile(r'extern\s+"C"\s+__attribute__\(\(used\)\)\s+void\s+(\w+)\s*\(([^)]*)\)')


class HostBuildError(RuntimeError):
    """The host compiler is missing or rejected a kernel source (the message carries its output)."""


class HostLaunchError(RuntimeError):
    """A strict host launch found a bad argument, an out-of-bounds write or a thread-order dependence."""


@functools.cache
def compiler() -> tuple[str | None, str]:
    """(path, description) of the host C++ compiler, or (None, why not)."""
    name = os.environ.get("CXX", "g++")
    path = shutil.which(name)
    if path is None:
        return None, f"no C++ compiler {name!r} on PATH (set CXX or install g++)"
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"the C++ compiler {path} does not run ({error})"
    return path, version.splitlines()[0] if version else path


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "jellyzoo" / "host-kernels"
    return Path(os.environ.get(CACHE_ENV, default))


def _sources_digest(source_name: str, flags: Sequence[str], compiler_version: str) -> str:
    digest = hashlib.sha256()
    for path in [KERNEL_DIR / source_name, *sorted(KERNEL_DIR.glob("*.cuh")), *sorted(HOST_DIR.glob("*.h"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update("\0".join([*flags, compiler_version]).encode())
    digest.update(Path(__file__).read_bytes())  # the wrapper generator below
    return digest.hexdigest()[:24]


def _normal_ctype(declaration: str) -> tuple[str, str]:
    """(C type, name) of a preprocessed parameter declaration, e.g. ('const __half*', 'v')."""
    words = declaration.replace("__restrict__", " ").replace("*", " * ").split()
    return " ".join(words[:-1]).replace(" *", "*"), words[-1]


def _wrapper(source: Path, signatures: dict[str, list[tuple[str, str]]]) -> str:
    lines = [f'#include "{source}"', '#include "grid.h"', ""]
    for entry, parameters in signatures.items():
        call = ", ".join(f"jz::argument<{ctype}>(cells, {k})" for k, (ctype, _) in enumerate(parameters))
        lines += [
            f'extern "C" __attribute__((visibility("default"))) void jz_launch_{entry}(',
            "    const unsigned char* cells, long long blocks, long long threads, int order, int workers) {",
            f"    jz::run_grid(blocks, threads, order, workers, [&] {{ {entry}({call}); }});",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise HostBuildError(f"{what} failed ({' '.join(command)}):\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class HostLibrary:
    """One source compiled for the host: its shared object and the compiled entry-point signatures."""

    source_name: str
    build: str
    path: Path
    signatures: dict[str, list[tuple[str, str]]]
    """{entry point: [(C type, parameter name), ...]} as g++ compiled them (after preprocessing)."""

    def __post_init__(self) -> None:
        self._library = ctypes.CDLL(str(self.path))
        self._functions: dict[str, Any] = {}

    def function(self, entry: str) -> Any:
        """The ctypes wrapper ``jz_launch_<entry>``."""
        if entry not in self._functions:
            if entry not in self.signatures:
                raise HostLaunchError(
                    f"{self.source_name} has no entry point {entry!r}; it has {sorted(self.signatures)}"
                )
            wrapper = getattr(self._library, f"jz_launch_{entry}")
            wrapper.argtypes = [ctypes.c_char_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_int, ctypes.c_int]
            wrapper.restype = None
            self._functions[entry] = wrapper
        return self._functions[entry]


@functools.cache
def library(source_name: str, build: str) -> HostLibrary:
    """`source_name` compiled for the host with the flags of `build` (from the cache when it is there).

    Raises:
        HostBuildError: no compiler, or the source does not compile (e.g. it uses a CUDA feature the host
            runtime does not provide); the message carries the compiler's output.
    """
    path, version = compiler()
    if path is None:
        raise HostBuildError(version)
    flags = (*_COMMON_FLAGS, *BUILD_FLAGS[build])
    source = KERNEL_DIR / source_name
    stem = f"{source.stem}-{build}-{_sources_digest(source_name, flags, version)}"
    cache = _cache_dir()
    shared_object, signature_file = cache / f"{stem}.so", cache / f"{stem}.json"
    if not (shared_object.is_file() and signature_file.is_file()):
        cache.mkdir(parents=True, exist_ok=True)
        includes = ["-include", "cuda_host_runtime.h", f"-I{HOST_DIR}", f"-I{KERNEL_DIR}"]
        preprocessed = _run([path, "-E", "-x", "c++", "-std=c++17", *includes, str(source)], f"preprocessing {source}")
        signatures = {
            entry: [_normal_ctype(declaration) for declaration in declarations.split(",")]
            for entry, declarations in _ENTRY.findall(preprocessed)
        }
        if not signatures:
            raise HostBuildError(f'{source_name} declares no extern "C" __global__ entry point')
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            wrapper = Path(scratch) / f"{source.stem}_host.cpp"
            wrapper.write_text(_wrapper(source, signatures))
            built = Path(scratch) / "library.so"
            _run([path, *flags, *includes, str(wrapper), "-o", str(built)], f"compiling {source_name} ({build} build)")
            (Path(scratch) / "signatures.json").write_text(json.dumps(signatures))
            os.replace(Path(scratch) / "signatures.json", signature_file)
            os.replace(built, shared_object)
    signatures = json.loads(signature_file.read_text())
    return HostLibrary(source_name, build, shared_object, signatures)


@functools.cache
def build_status(build: str = "fast") -> tuple[bool, str]:
    """(usable, reason): whether every `.cu` source of `zoo.kernels` builds for the host with `build`."""
    sources = sorted(path.name for path in KERNEL_DIR.glob("*.cu"))
    try:
        with ThreadPoolExecutor(max_workers=len(sources)) as pool:
            list(pool.map(lambda name: library(name, build), sources))
    except HostBuildError as error:
        return False, str(error)
    return True, f"{len(sources)} kernel sources built for the host ({build}: {' '.join(BUILD_FLAGS[build])})"


def _pack(values: Sequence[Any]) -> bytes:
    """The arguments packed one per 8-byte cell: pointers (None: null), long long, float (then 4 pad bytes)."""
    formats, packed = [], []
    for value in values:
        if isinstance(value, torch.Tensor):
            formats.append("Q")
            packed.append(value.data_ptr())
        elif value is None:
            formats.append("Q")
            packed.append(0)
        elif isinstance(value, int):
            formats.append("q")
            packed.append(value)
        else:
            formats.append("f4x")
            packed.append(value)
    return struct.pack("=" + "".join(formats), *packed)


def launch(
    source_name: str,
    function: str,
    grid: tuple[int, ...],
    block: tuple[int, ...],
    args: Sequence[Any],
    build: str = "fast",
    strict: bool = False,
) -> None:
    """Run entry point `function` of `source_name` on CPU tensors over a 1-D `grid` of `block` threads.

    `args` are in declaration order as `zoo.kernels.launch.launch` checked them. With `strict`, see
    `_strict_launch`; otherwise the ``fast`` build spreads blocks over ``torch.get_num_threads()`` threads.
    """
    compiled = library(source_name, build)
    wrapper = compiled.function(function)
    if strict:
        _strict_launch(compiled, function, wrapper, grid[0], block[0], args)
        return
    workers = torch.get_num_threads() if build == "fast" else 1
    wrapper(_pack(args), grid[0], block[0], 0, workers)


def _check_against_compiled(compiled: HostLibrary, function: str, args: Sequence[Any]) -> None:
    signature = compiled.signatures[function]
    if len(args) != len(signature):
        raise HostLaunchError(f"{function} was compiled with {len(signature)} parameters, launched with {len(args)}")
    for (ctype, name), value in zip(signature, args, strict=True):
        where = f"{function}: {name} ({ctype})"
        if ctype.endswith("*"):
            if value is None:
                continue
            base = ctype.removeprefix("const ").removesuffix("*")
            if not isinstance(value, torch.Tensor) or value.dtype != _CTYPE_DTYPES.get(base):
                raise HostLaunchError(f"{where} got {getattr(value, 'dtype', type(value).__name__)}")
            if not value.is_contiguous() or value.device.type != "cpu":
                raise HostLaunchError(f"{where} must be a contiguous CPU tensor")
        elif ctype == "long long" and type(value) is not int or ctype == "float" and type(value) is not float:
            raise HostLaunchError(f"{where} got {type(value).__name__} {value!r}")
        elif ctype not in ("long long", "float"):
            raise HostLaunchError(f"{where}: the host launcher cannot pass this type")
    tensors = [
        (k, name, value.data_ptr(), value.data_ptr() + value.nbytes)
        for k, ((_, name), value) in enumerate(zip(signature, args, strict=True))
        if isinstance(value, torch.Tensor) and value.nbytes
    ]
    for k, name, start, end in tensors:
        if signature[k][0].startswith("const"):
            continue
        for other, other_name, other_start, other_end in tensors:
            if other != k and other_start < end and start < other_end:
                raise HostLaunchError(f"{function}: output {name} overlaps argument {other_name}")


def _strict_launch(
    compiled: HostLibrary, function: str, wrapper: Any, blocks: int, threads: int, args: Sequence[Any]
) -> None:
    """Check `args` against the compiled signature, then run twice on guarded copies, in opposite thread orders.

    Each pointer argument (None included, as an empty buffer) is copied between `GUARD_BYTES` guard bytes; the
    runs use different guard patterns. Raises `HostLaunchError` when a guard changed, a const buffer changed or
    the two runs disagree in any written byte; otherwise the first run's buffers are copied back.
    """
    _check_against_compiled(compiled, function, args)
    signature = compiled.signatures[function]
    runs = []
    for order, pattern in enumerate(_GUARD_PATTERNS):
        values, buffers = [], []
        for (ctype, name), value in zip(signature, args, strict=True):
            if not ctype.endswith("*"):
                values.append(value)
                continue
            payload = value.reshape(-1).view(torch.uint8) if value is not None else torch.empty(0, dtype=torch.uint8)
            guarded = torch.full((payload.numel() + 2 * GUARD_BYTES,), pattern, dtype=torch.uint8)
            guarded[GUARD_BYTES : GUARD_BYTES + payload.numel()] = payload
            middle = guarded[GUARD_BYTES : GUARD_BYTES + payload.numel()]
            values.append(middle)
            buffers.append((name, ctype.startswith("const"), value, guarded, middle, payload))
        wrapper(_pack(values), blocks, threads, order, 1)
        for name, const, _, guarded, middle, payload in buffers:
            inside = guarded[GUARD_BYTES : GUARD_BYTES + middle.numel()]
            if not (
                torch.all(guarded[:GUARD_BYTES] == pattern)
                and torch.all(guarded[GUARD_BYTES + middle.numel() :] == pattern)
            ):
                raise HostLaunchError(f"{function} wrote outside {name} (guard bytes changed)")
            if const and not torch.equal(inside, payload):
                raise HostLaunchError(f"{function} changed its const input {name}")
        runs.append(buffers)
    for first, second in zip(*runs, strict=True):
        name, const, original, _, result, _ = first
        if const or original is None:
            continue
        differ = result != second[4]
        if differ.any():
            count = int(differ.sum())
            raise HostLaunchError(
                f"{function}: {name} differs in {count} byte(s) between the two thread orders (threads depend on "
                "each other, or read outside their buffers)"
            )
        original.reshape(-1).view(torch.uint8).copy_(result)
