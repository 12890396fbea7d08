"""Where the real `.cu` kernels run in the tests: the strict host tier on every machine, CuPy on a GPU.

`kernel_device` is parametrised over
- ``"cpu"``: the `.cu` sources compiled for the host with g++ and run by the strict launcher
  (`zoo.kernels.launch.strict_launches`: compiled-signature checks, guard bytes, NaN-filled outputs, every
  launch twice in opposite thread orders); skipped, saying why, where there is no C++ compiler, and failing
  where there is one but a source does not build;
- ``"cuda"`` (marked `cuda`): CuPy on a GPU; skipped without one.
The same test body therefore exercises its inputs on the CPU before a GPU ever sees them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from zoo.kernels import host
from zoo.kernels.backend import cupy_status
from zoo.kernels.launch import strict_launches

KERNEL_DEVICES = [pytest.param("cpu", id="host"), pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)]
BACKEND_OF_DEVICE = {"cpu": "cpu", "cuda": "cupy"}
"""The backend that runs the kernels on each device."""


def require_kernel_device(device: str) -> None:
    """Skip the test, saying why, when the kernels cannot run on `device`."""
    if device == "cpu":
        compiler, reason = host.compiler()
        if compiler is None:
            pytest.skip(f"the host kernel tier cannot run: {reason}")
        usable, reason = host.build_status("strict")
        assert usable, f"the kernel sources must build for the host tier: {reason}"
        return
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to PyTorch")
    usable, reason = cupy_status()
    if not usable:
        pytest.skip(f"CuPy kernels cannot run: {reason}")


@pytest.fixture(params=KERNEL_DEVICES)
def kernel_device(request: pytest.FixtureRequest) -> Iterator[str]:
    """ "cpu" (strict host tier, active for the whole test) or "cuda" (CuPy)."""
    require_kernel_device(request.param)
    if request.param == "cpu":
        with strict_launches():
            yield "cpu"
    else:
        yield "cuda"


@pytest.fixture
def kernel_backend(kernel_device: str) -> str:
    """The backend that runs the kernels on `kernel_device`: "cpu" (host build) or "cupy"."""
    return BACKEND_OF_DEVICE[kernel_device]
