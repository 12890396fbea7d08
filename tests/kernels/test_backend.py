"""Backend selection: auto/torch/cupy/cpu, the environment variable, and the errors when a backend cannot run."""

from __future__ import annotations

import pytest
import torch

from zoo import kernels
from zoo.kernels import backend


@pytest.fixture(autouse=True)
def no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backend.BACKEND_ENV, raising=False)


def test_auto_picks_the_host_build_for_cpu_tensors_when_it_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(2)
    usable, _ = backend.cpu_status()
    assert backend.resolve_backend("auto", x) == ("cpu" if usable else "torch")
    assert backend.resolve_backend("torch", x) == "torch"
    assert backend.resolve_backend("auto", x.double()) == "torch"
    monkeypatch.setattr(backend, "cpu_status", lambda: (False, "no C++ compiler 'g++' on PATH"))
    assert backend.resolve_backend("auto", x) == "torch"
    with pytest.raises(RuntimeError, match="backend 'cpu' was forced but is not usable: no C\\+\\+ compiler"):
        backend.resolve_backend("cpu", x)


def test_meta_tensors_take_the_operators_without_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "cpu_status", lambda: (False, "no compiler"))
    meta = torch.zeros(3, 2, 4, device="meta")
    assert backend.resolve_backend("auto", meta) == "cpu"
    assert kernels.lif_scan(meta, torch.ones(4, device="meta")).shape == (3, 2, 4)


def test_forcing_cupy_on_cpu_tensors_raises() -> None:
    with pytest.raises(RuntimeError, match="needs CUDA tensors, got tensors on cpu"):
        kernels.lif_scan(torch.zeros(2, 1, 3), torch.ones(3), backend="cupy")


def test_environment_variable_replaces_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backend.BACKEND_ENV, "cupy")
    with pytest.raises(RuntimeError, match="backend 'cupy'"):
        kernels.spike(torch.zeros(3))
    monkeypatch.setenv(backend.BACKEND_ENV, "torch")
    assert kernels.spike(torch.ones(3, requires_grad=True)).grad_fn is not None
    # an explicit argument still wins over the environment
    assert kernels.spike(torch.ones(3), backend="torch").tolist() == [1, 1, 1]
    monkeypatch.setenv(backend.BACKEND_ENV, "TORCH")
    assert backend.resolve_backend("auto", torch.zeros(1)) == "torch"


def test_invalid_backend_names_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        kernels.spike(torch.zeros(1), backend="triton")
    monkeypatch.setenv(backend.BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match=f"environment variable {backend.BACKEND_ENV}"):
        kernels.spike(torch.zeros(1))


def test_forced_cupy_without_a_usable_cupy_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA tensors are faked here (the check comes before any launch); the CuPy probe says why it failed."""
    fake = torch.zeros(1)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(backend, "cupy_status", lambda: (False, "CuPy does not import (ImportError: test)"))
    with pytest.raises(RuntimeError, match=r"forced but is not usable: CuPy does not import"):
        backend.resolve_backend("cupy", fake)
    assert backend.resolve_backend("auto", fake) == "torch"


def test_auto_keeps_float64_on_the_reference_and_forced_cupy_names_the_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(backend, "cupy_status", lambda: (True, "test"))
    assert backend.resolve_backend("auto", torch.zeros(1)) == "cupy"
    assert backend.resolve_backend("auto", torch.zeros(1, dtype=torch.float64)) == "torch"
    message = r"takes float32, float16 and bfloat16 tensors, got torch.float32, torch.float64"
    with pytest.raises(TypeError, match=message):
        backend.resolve_backend("cupy", torch.zeros(1, dtype=torch.float64), torch.zeros(1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the probe on a machine without a GPU")
def test_cupy_probe_reports_unusable_without_a_gpu() -> None:
    backend.cupy_status.cache_clear()
    usable, reason = backend.cupy_status()
    assert not usable and reason
