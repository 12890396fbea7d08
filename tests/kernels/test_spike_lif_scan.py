"""The `spike` / `signed_spike` / `lif_scan` kernels against the PyTorch references.

The kernel tests take `kernel_device` (tests/kernels/conftest.py): they run the real `.cu` kernels through the
ops' operators, on the strict host tier everywhere and through CuPy on a GPU (marked `cuda`). A float64
transcription of the kernels' loops (the forward recurrence and the reverse-time backward with its per-neuron
grad_alpha) is also checked against autograd of `lif_scan_reference`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from importlib import import_module

import pytest
import torch

from zoo.kernels import (
    BACKEND_ENV,
    lif_scan,
    lif_scan_reference,
    signed_spike,
    signed_spike_reference,
    signed_spike_surrogate,
    spike,
    spike_reference,
    spike_surrogate,
)

# The package re-exports functions named like their modules, so fetch the modules themselves.
lif_scan_module = import_module("zoo.kernels.lif_scan")

HALF_DTYPES = (torch.float16, torch.bfloat16)
KERNEL_DTYPES = (torch.float32, *HALF_DTYPES)
# Half results are computed in float32 and rounded once: allow one unit in the last place of the output dtype.
ROUNDING_RTOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """allclose with an absolute slack of `rtol` times the largest |expected| (gradients near zero)."""
    scale = expected.float().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale + 1e-6)


# ---------------------------------------------------------------------------------------------------------
# Float PyTorch transcription of the kernels' per-neuron loops over flat [T, N] sequences (as in the .cu)
# ---------------------------------------------------------------------------------------------------------


def transcribed_spike(u: torch.Tensor, threshold: float, signed: bool) -> torch.Tensor:
    """spike_value of the kernels: +1 if u >= th, -1 if signed and u <= -th, else 0."""
    fired = (u >= threshold).to(u.dtype)
    return fired - (u <= -threshold).to(u.dtype) if signed else fired


def transcribed_surrogate(u: torch.Tensor, threshold: float, gamma: float, signed: bool) -> torch.Tensor:
    """spike_surrogate of the kernels (the formulas of `spike_surrogate` / `signed_spike_surrogate`)."""
    return (signed_spike_surrogate if signed else spike_surrogate)(u, threshold, gamma)


def transcribed_forward(
    current: torch.Tensor, leak: torch.Tensor, threshold: float, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, membrane u), both [T, N], of current [T, N] with the per-neuron leak [N]."""
    u = torch.zeros_like(current[0])
    s = torch.zeros_like(u)
    spikes, membrane = [], []
    for current_t in current:
        u = leak * u + current_t - threshold * s
        s = transcribed_spike(u, threshold, signed)
        spikes.append(s)
        membrane.append(u)
    return torch.stack(spikes), torch.stack(membrane)


def transcribed_backward(
    grad_spikes: torch.Tensor, membrane: torch.Tensor, leak: torch.Tensor, threshold: float, gamma: float, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_current [T, N], grad_alpha_partial [N]) by the reverse-time loop of lif_scan_backward."""
    steps = membrane.shape[0]
    grad_current = torch.empty_like(membrane)
    grad_u_next = torch.zeros_like(membrane[0])
    grad_alpha = torch.zeros_like(membrane[0])
    for t in reversed(range(steps)):
        u_previous = membrane[t - 1] if t > 0 else torch.zeros_like(membrane[0])
        grad_s = grad_spikes[t] - threshold * grad_u_next
        grad_u = grad_s * transcribed_surrogate(membrane[t], threshold, gamma, signed) + leak * grad_u_next
        grad_current[t] = grad_u
        grad_alpha = grad_alpha + grad_u * u_previous
        grad_u_next = grad_u
    return grad_current, grad_alpha


def neuron_leak(alpha: torch.Tensor, neurons: int, channels: int, spatial: int) -> torch.Tensor:
    """alpha of each neuron n of [B, C, S], indexed as in the kernels: channel (n / S) % C."""
    return alpha[(torch.arange(neurons, device=alpha.device) // spatial) % channels]


# ---------------------------------------------------------------------------------------------------------
# Test inputs
# ---------------------------------------------------------------------------------------------------------

LAYOUTS = ("contiguous", "time_transposed", "sliced", "channels_last")


def random_lif_cases(count: int, seed: int) -> list:
    """`count` random (shape [T, B, C, *spatial] of rank 3 to 5, threshold, gamma, layout) cases, reproducibly."""
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        spatial = [rng.randint(1, 6) for _ in range(rng.randint(0, 2))]
        shape = (rng.randint(1, 8), rng.randint(1, 3), rng.choice([1, 2, 3, 5, 7, 9]), *spatial)
        layout = rng.choice(LAYOUTS)
        threshold, gamma = rng.choice([0.5, 1.0, 1.25, 2.0]), rng.choice([2.0, 10.0])
        case_id = f"random{index}-{'x'.join(map(str, shape))}-{layout}"
        cases.append(pytest.param(shape, threshold, gamma, layout, id=case_id))
    return cases


LIF_CASES = [  # current shape [T, B, C, *spatial], threshold, gamma, memory layout of the current
    pytest.param((1, 1, 1), 1.0, 10.0, "contiguous", id="T1-B1-C1"),
    pytest.param((1, 3, 5, 4), 0.5, 10.0, "sliced", id="T1-4d-sliced"),
    pytest.param((7, 1, 3), 1.0, 10.0, "time_transposed", id="B1-3d-transposed"),
    pytest.param((5, 2, 7, 3, 5), 1.25, 4.0, "contiguous", id="5d-odd-C"),
    pytest.param((6, 3, 5, 4, 3), 1.0, 10.0, "channels_last", id="5d-channels-last"),
    pytest.param((9, 2, 3, 11, 13), 0.75, 25.0, "time_transposed", id="5d-transposed-several-blocks"),
    *random_lif_cases(6, seed=0),
]


def make_current(
    shape: Sequence[int], layout: str, dtype: torch.dtype, device: str, generator: torch.Generator, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf, current): a random leaf that requires grad, and its view `current` of `shape` in `layout`."""
    steps, batch, channels, *spatial = shape

    def draw(*size: int) -> torch.Tensor:
        values = (torch.randn(size, generator=generator, dtype=torch.float64) + 0.3) * threshold
        return values.to(dtype=dtype, device=device).requires_grad_()

    if layout == "contiguous":
        leaf = draw(*shape)
        return leaf, leaf
    if layout == "time_transposed":
        leaf = draw(batch, steps, channels, *spatial)
        return leaf, leaf.transpose(0, 1)
    if layout == "sliced":
        leaf = draw(steps, batch, 2 * channels, *spatial)
        return leaf, leaf[:, :, 1::2]
    if layout == "channels_last":
        leaf = draw(steps, batch, *spatial, channels)
        return leaf, leaf.movedim(-1, 2)
    raise ValueError(f"unknown layout {layout!r}")


def make_alpha(channels: int, device: str, generator: torch.Generator) -> torch.Tensor:
    """Leaks in [0.2, 1] with alpha = 1 (the IF neuron) in channel 0, float32, requiring grad."""
    alpha = torch.rand(channels, generator=generator) * 0.8 + 0.2
    alpha[0] = 1.0
    return alpha.to(device).requires_grad_()


def make_membrane(shape: Sequence[int], dtype: torch.dtype, device: str, generator: torch.Generator, threshold: float):
    """(leaf, v): random membrane values, some exactly at +-threshold and 0, and a transposed (strided) view."""
    values = torch.randn(shape[::-1], generator=generator, dtype=torch.float64) * 1.5 * threshold
    flat = values.view(-1)
    special = torch.tensor([threshold, -threshold, 0.0], dtype=torch.float64)
    flat[: len(special)] = special[: flat.numel()]
    leaf = values.to(dtype=dtype, device=device).requires_grad_()
    return leaf, leaf.permute(*reversed(range(leaf.dim())))


SPIKE_CASES = [  # shape, threshold, gamma
    pytest.param((1,), 1.0, 10.0, id="one-element"),
    pytest.param((3, 5, 7), 0.5, 10.0, id="3d"),
    pytest.param((2, 3, 4, 5, 6), 1.25, 4.0, id="5d"),
    pytest.param((17, 31), 1.0, 25.0, id="2d-several-blocks"),
]


def run_with_grads(op: Callable[[], torch.Tensor], inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(output, *grads of `inputs`) of `op()` for a fixed random upstream gradient."""
    output = op()
    generator = torch.Generator().manual_seed(0)
    upstream = torch.randn(output.shape, generator=generator).to(dtype=output.dtype, device=output.device)
    return (output.detach(), *torch.autograd.grad(output, inputs, upstream))


# ---------------------------------------------------------------------------------------------------------
# CPU: the kernels' algorithm (float64 transcription) against autograd of the reference
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["binary", "signed"])
@pytest.mark.parametrize(("shape", "threshold", "gamma", "layout"), LIF_CASES)
def test_transcribed_lif_scan_matches_reference_autograd_float64(shape, threshold, gamma, layout, signed) -> None:
    generator = torch.Generator().manual_seed(1)
    leaf, current = make_current(shape, layout, torch.float64, "cpu", generator, threshold)
    alpha = make_alpha(shape[2], "cpu", generator).detach().double().requires_grad_()
    expected_spikes, expected_grad_current, expected_grad_alpha = run_with_grads(
        lambda: lif_scan_reference(current, alpha, threshold, signed, gamma), (current, alpha)
    )
    steps, batch, channels = shape[:3]
    spatial = math.prod(shape[3:])
    neurons = batch * channels * spatial
    flat_current = current.detach().reshape(steps, neurons)
    leak = neuron_leak(alpha.detach(), neurons, channels, spatial)
    spikes, membrane = transcribed_forward(flat_current, leak, threshold, signed)
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(0)).double().reshape(steps, neurons)
    grad_current, grad_alpha_partial = transcribed_backward(upstream, membrane, leak, threshold, gamma, signed)
    grad_alpha = grad_alpha_partial.view(batch, channels, spatial).sum((0, 2))

    assert torch.equal(spikes.view(shape), expected_spikes)
    assert spikes.numel() < 16 or spikes.abs().sum() > 0, "the case should make neurons fire"
    torch.testing.assert_close(grad_current.view(shape), expected_grad_current, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_alpha, expected_grad_alpha, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# The real kernels: strict host tier (every run) and CuPy (GPU)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", KERNEL_DTYPES, ids=str)
@pytest.mark.parametrize("signed", [False, True], ids=["binary", "signed"])
@pytest.mark.parametrize(("shape", "threshold", "gamma"), SPIKE_CASES)
def test_kernel_spike_matches_reference(kernel_device, kernel_backend, shape, threshold, gamma, signed, dtype) -> None:
    """Spikes equal the reference on the same inputs; half gradients equal the float32 reference rounded once."""
    backend = kernel_backend
    leaf, v = make_membrane(shape, dtype, kernel_device, torch.Generator().manual_seed(5), threshold)
    op, reference = (signed_spike, signed_spike_reference) if signed else (spike, spike_reference)
    spikes, grad = run_with_grads(lambda: op(v, threshold, gamma, backend=backend), (leaf,))
    upcast = leaf.detach().float().requires_grad_()
    permuted = upcast.permute(*reversed(range(v.dim())))
    _, expected_grad = run_with_grads(lambda: reference(permuted, threshold, gamma), (upcast,))

    assert spikes.dtype == dtype and spikes.shape == v.shape
    assert torch.equal(spikes, reference(v, threshold, gamma).detach())
    assert_close_scaled(grad, expected_grad.to(dtype), ROUNDING_RTOL[dtype])


@pytest.mark.parametrize("dtype", KERNEL_DTYPES, ids=str)
@pytest.mark.parametrize("signed", [False, True], ids=["binary", "signed"])
@pytest.mark.parametrize(
    ("shape", "threshold", "gamma", "layout"),
    [*LIF_CASES, pytest.param((4, 8, 33, 17, 19), 1.0, 10.0, "sliced", id="5d-85k-neurons")],
)
def test_kernel_lif_scan_matches_reference(
    kernel_device, kernel_backend, shape, threshold, gamma, layout, signed, dtype
) -> None:
    backend = kernel_backend
    generator = torch.Generator().manual_seed(6)
    leaf, current = make_current(shape, layout, dtype, kernel_device, generator, threshold)
    alpha = make_alpha(shape[2], kernel_device, generator)
    spikes, grad_leaf, grad_alpha = run_with_grads(
        lambda: lif_scan(current, alpha, threshold, signed, gamma, backend=backend), (leaf, alpha)
    )
    expected = run_with_grads(lambda: lif_scan_reference(current, alpha, threshold, signed, gamma), (leaf, alpha))

    assert spikes.dtype == dtype and spikes.shape == current.shape
    assert torch.equal(spikes, expected[0])
    assert_close_scaled(grad_leaf, expected[1], ROUNDING_RTOL[dtype])
    assert_close_scaled(grad_alpha, expected[2], 1e-4)
    with torch.no_grad():
        assert torch.equal(lif_scan(current, alpha, threshold, signed, gamma, backend=backend), expected[0])


def test_kernel_lif_scan_keeps_no_membrane_without_grad(kernel_device, kernel_backend, monkeypatch) -> None:
    """The one save rule: under no_grad, or with inputs that need no gradient, no membrane is written."""
    backend = kernel_backend
    launches = []

    def recording_launch(source, kernel, **arguments):
        launches.append(arguments)
        lif_scan_module.launch.__wrapped__(source, kernel, **arguments)

    recording_launch.__wrapped__ = lif_scan_module.launch
    monkeypatch.setattr(lif_scan_module, "launch", recording_launch)
    generator = torch.Generator().manual_seed(4)
    _, current = make_current((5, 2, 3, 4), "contiguous", torch.float32, kernel_device, generator, 1.0)
    alpha = make_alpha(3, kernel_device, generator)
    with torch.no_grad():
        spikes = lif_scan(current, alpha, backend=backend)
    detached = lif_scan(current.detach(), alpha.detach(), backend=backend)
    lif_scan(current, alpha, backend=backend)

    assert torch.equal(spikes, lif_scan_reference(current.detach(), alpha.detach()))
    assert torch.equal(detached, spikes)
    assert [arguments["save_membrane"] for arguments in launches] == [0, 0, 1]
    assert launches[0]["membrane"] is None and launches[2]["membrane"].shape == (5, 2 * 3 * 4)


def test_kernel_lif_scan_rounds_like_the_reference_on_the_threshold(kernel_device, kernel_backend) -> None:
    """Neurons whose u_2 = (alpha u_1 + I_2) - 0 lands on the threshold only without FMA contraction."""
    threshold = 1.0
    generator = torch.Generator().manual_seed(7)
    alpha = torch.rand(4096, generator=generator) * 0.5 + 0.45
    first = torch.rand(4096, generator=generator) * 0.9
    second = threshold - alpha * first
    fused = (alpha.double() * first.double() + second.double()).float()
    chosen = ((alpha * first + second) == threshold) & (fused < threshold)
    current = torch.stack([first[chosen], second[chosen]])[:, None, :]
    expected = lif_scan_reference(current, alpha[chosen], threshold)
    assert chosen.sum() >= 32 and expected[1].all() and not expected[0].any()

    backend = kernel_backend
    spikes = lif_scan(current.to(kernel_device), alpha[chosen].to(kernel_device), threshold, backend=backend)
    assert torch.equal(spikes.cpu(), expected)


def test_kernel_if_neuron_with_exact_threshold_hits(kernel_device, kernel_backend) -> None:
    """alpha = 1 and currents on a th/4 grid: the membrane sits exactly on +-th often; spikes must match."""
    threshold = 0.5
    generator = torch.Generator().manual_seed(8)
    current = torch.randint(-4, 7, (20, 4, 6, 9, 9), generator=generator).float() * (threshold / 4)
    alpha = torch.ones(6)
    backend = kernel_backend
    for signed in (False, True):
        _, membrane = transcribed_forward(current.view(20, -1), torch.ones(()), threshold, signed)
        assert (membrane == threshold).any() and (not signed or (membrane == -threshold).any())
        spikes = lif_scan(current.to(kernel_device), alpha.to(kernel_device), threshold, signed, backend=backend)
        assert torch.equal(spikes.cpu(), lif_scan_reference(current, alpha, threshold, signed))


def test_auto_backend_runs_the_kernels_and_env_forces_torch(kernel_device, kernel_backend, monkeypatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    current = torch.randn(3, 2, 4, 5, device=kernel_device, requires_grad=True)
    alpha = torch.full((4,), 0.9, device=kernel_device, requires_grad=True)
    op_backward = "jellyzoo_lif_scan_forward"  # the autograd node of the jellyzoo::lif_scan_forward operator
    assert op_backward in lif_scan(current, alpha).grad_fn.name()
    assert "jellyzoo_spike_forward" in spike(current).grad_fn.name()
    assert "jellyzoo_spike_forward" in signed_spike(current).grad_fn.name()

    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert "jellyzoo" not in lif_scan(current, alpha).grad_fn.name()
    assert "jellyzoo" not in spike(current).grad_fn.name()
    assert op_backward in lif_scan(current, alpha, backend=kernel_backend).grad_fn.name()


def test_kernels_reject_float64(kernel_device, kernel_backend) -> None:
    backend = kernel_backend
    with pytest.raises(TypeError, match="float64"):
        spike(torch.zeros(3, device=kernel_device, dtype=torch.float64), backend=backend)
    with pytest.raises(TypeError, match="float64"):
        alpha = torch.ones(3, device=kernel_device)
        lif_scan(torch.zeros(2, 1, 3, device=kernel_device, dtype=torch.float64), alpha, backend=backend)


def test_cupy_backend_on_cpu_tensors_raises() -> None:
    v = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        spike(v, backend="cupy")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        signed_spike(v, backend="cupy")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        lif_scan(torch.zeros(2, 1, 3), torch.ones(3), backend="cupy")
