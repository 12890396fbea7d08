"""Every CUDA source of `zoo.kernels` compiles with nvcc and defines the entry points the Python side launches.

CPU only: nvcc translates each `kernels/*.cu` to PTX (no GPU needed), treating warnings as errors. Every
``.entry`` in the PTX must be named ``<kernel>_<dtype>`` (as `cupy_runtime.kernel_name` builds names, so no
C++-mangled kernels), each kernel must come in the full float32/float16/bfloat16 set, and each kernel must be
named by a string literal in the Python modules of `zoo.kernels` (no kernel that nothing launches).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.kernels.launch import DTYPE_SUFFIX, KERNEL_DIR

SOURCES = sorted(KERNEL_DIR.glob("*.cu"))
ARCHITECTURES = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc")

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH (the CUDA toolkit compiles the .cu files)")

CompilePTX = Callable[[Path, str], str]


@pytest.fixture(scope="module")
def compile_ptx(tmp_path_factory: pytest.TempPathFactory) -> CompilePTX:
    """compile(source, arch) -> PTX text; fails the test with nvcc's messages when nvcc does not succeed."""
    cache: dict[tuple[Path, str], str] = {}

    def compile_source(source: Path, arch: str) -> str:
        if (source, arch) not in cache:
            ptx = tmp_path_factory.mktemp("ptx") / f"{source.stem}_{arch}.ptx"
            include = f"-I{source.parent}"  # the shared .cuh headers, as cupy_runtime passes them to NVRTC
            command = [NVCC, "--ptx", "-std=c++17", include, f"-arch={arch}", "-Werror", "all-warnings", "-o", str(ptx)]
            result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, f"nvcc failed on {source.name} for {arch}:\n{result.stdout}{result.stderr}"
            cache[(source, arch)] = ptx.read_text()
        return cache[(source, arch)]

    return compile_source


def entry_points(ptx: str) -> list[str]:
    """Names of the kernels (``.entry`` directives) defined in `ptx`."""
    return re.findall(r"\.entry\s+([A-Za-z_]\w*)\s*\(", ptx)


def kernels_by_base(names: list[str]) -> dict[str, set[str]]:
    """{kernel: {dtype suffixes}} for entry names ``<kernel>_<suffix>``; other names map to themselves with {""}."""
    found: dict[str, set[str]] = defaultdict(set)
    for name in names:
        base, _, suffix = name.rpartition("_")
        if base and suffix in DTYPE_SUFFIX.values():
            found[base].add(suffix)
        else:
            found[name].add("")
    return found


def test_kernel_sources_exist() -> None:
    assert {"spike.cu", "lif_scan.cu"} <= {source.name for source in SOURCES}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("source", SOURCES, ids=[source.name for source in SOURCES])
def test_source_compiles_with_an_entry_point_per_dtype(compile_ptx: CompilePTX, source: Path, arch: str) -> None:
    names = entry_points(compile_ptx(source, arch))
    assert names, f"{source.name} defines no kernel"
    assert len(names) == len(set(names)), f"{source.name} defines a kernel twice: {sorted(names)}"
    expected = set(DTYPE_SUFFIX.values())
    for base, suffixes in kernels_by_base(names).items():
        assert suffixes == expected, (
            f'{source.name}: kernel {base!r} must have exactly the extern "C" entry points '
            f"{sorted(f'{base}_{suffix}' for suffix in expected)}; found {sorted(names)}"
        )


@pytest.mark.parametrize("source", SOURCES, ids=[source.name for source in SOURCES])
def test_every_kernel_is_launched_from_python(compile_ptx: CompilePTX, source: Path) -> None:
    python_sources = "\n".join(path.read_text() for path in sorted(KERNEL_DIR.glob("*.py")))
    literals = set(re.findall(r"[\"'](\w+)[\"']", python_sources))
    assert f'"{source.name}"' in python_sources, f"no module of zoo.kernels launches from {source.name}"
    for base in kernels_by_base(entry_points(compile_ptx(source, ARCHITECTURES[0]))):
        assert base in literals, f"kernel {base!r} of {source.name} is not named by any module of zoo.kernels"
