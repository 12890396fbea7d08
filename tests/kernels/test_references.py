"""CPU tests of the pure-PyTorch kernel references: the oracles every CuPy kernel is checked against."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo import kernels
from zoo.kernels import lif_scan_reference, spikgru_scan_reference


def _numpy_spikes(v: np.ndarray, threshold: float, signed: bool) -> np.ndarray:
    fired = (v >= threshold).astype(v.dtype)
    return fired - (v <= -threshold).astype(v.dtype) if signed else fired


def _numpy_lif(current: np.ndarray, alpha: np.ndarray, threshold: float, signed: bool) -> np.ndarray:
    """Step-by-step LIF written independently of the reference (numpy, same float32 rounding order)."""
    leak = alpha.reshape((-1,) + (1,) * (current.ndim - 3)).astype(current.dtype)
    u = np.zeros(current.shape[1:], current.dtype)
    s = np.zeros_like(u)
    out = np.empty_like(current)
    for t in range(current.shape[0]):
        u = (leak * u + current[t]) - current.dtype.type(threshold) * s
        s = _numpy_spikes(u, threshold, signed)
        out[t] = s
    return out


def _numpy_spikgru(proj, U, alpha, b_ui, gates, signed, threshold):
    """Step-by-step SpikGRU in float64 numpy, written from the equations."""
    hidden = alpha.shape[0]
    s = np.zeros((proj.shape[1], hidden))
    i = np.zeros_like(s)
    v = np.zeros_like(s)
    out = []
    for t in range(proj.shape[0]):
        rec = s @ U.T
        z = 1 / (1 + np.exp(-(proj[t, :, :hidden] + rec[:, :hidden])))
        if gates == 2:
            r = 1 / (1 + np.exp(-(proj[t, :, hidden : 2 * hidden] + rec[:, hidden : 2 * hidden])))
        else:
            r = 1.0
        i = alpha * i + proj[t, :, -hidden:] + r * (rec[:, -hidden:] + b_ui)
        v = z * v + (1 - z) * i - threshold * s
        s = _numpy_spikes(v, threshold, signed)
        out.append(s)
    return np.stack(out)


# ---------------------------------------------------------------- spikes and surrogates


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_spike_forward_is_inclusive(threshold: float) -> None:
    v = torch.tensor([-2.0, -threshold, -0.2, 0.0, threshold - 1e-6, threshold, 3.0])
    assert kernels.spike(v, threshold).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert kernels.signed_spike(v, threshold).tolist() == [-1, -1, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("gamma", [10.0, 3.0])
def test_spike_gradients_are_the_spikgru_surrogates(gamma: float) -> None:
    threshold = 0.7
    v = torch.linspace(-3, 3, 101, dtype=torch.float64, requires_grad=True)
    kernels.spike(v, threshold, gamma).sum().backward()
    expected = 1 / (1 + gamma * (v.detach() - threshold) ** 2)
    torch.testing.assert_close(v.grad, expected)

    v.grad = None
    kernels.signed_spike(v, threshold, gamma).sum().backward()
    bumps = 1 / (1 + gamma * (v.detach() - threshold) ** 2) + 1 / (1 + gamma * (v.detach() + threshold) ** 2)
    torch.testing.assert_close(v.grad, bumps / (1 + 1 / (1 + 4 * gamma * threshold**2)))


def test_signed_surrogate_peaks_at_one_on_both_thresholds() -> None:
    peaks = kernels.signed_spike_surrogate(torch.tensor([-1.3, 1.3], dtype=torch.float64), threshold=1.3, gamma=10.0)
    torch.testing.assert_close(peaks, torch.ones(2, dtype=torch.float64))


HALF_THRESHOLDS = [(torch.float16, 0.1), (torch.bfloat16, 1.003)]
"""Thresholds that the half dtype cannot represent: compared in float32, its nearest value does not fire."""


@pytest.mark.parametrize(("dtype", "threshold"), HALF_THRESHOLDS, ids=str)
def test_half_membranes_compare_with_the_float32_threshold(dtype: torch.dtype, threshold: float) -> None:
    nearest = torch.tensor(threshold).to(dtype)
    above = (nearest.view(torch.int16) + 1).view(dtype)  # the next representable value
    assert nearest.float() < threshold <= above.float()
    v = torch.stack([nearest, above, -nearest, -above])
    for backend in ("torch", "auto"):
        assert kernels.spike(v, threshold, backend=backend).tolist() == [0, 1, 0, 0]
        assert kernels.signed_spike(v, threshold, backend=backend).tolist() == [0, 1, 0, -1]
        current = v.view(1, 4, 1)
        assert kernels.lif_scan(current, torch.ones(1), threshold, signed=True, backend=backend).flatten().tolist() == [
            0, 1, 0, -1
        ]  # fmt: skip


def test_spike_keeps_shape_and_dtype() -> None:
    v = torch.randn(3, 1, 5, dtype=torch.bfloat16)
    assert kernels.spike(v).dtype == torch.bfloat16 and kernels.signed_spike(v).shape == (3, 1, 5)


# ---------------------------------------------------------------- lif_scan


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 2, 3), (5, 3, 5, 4, 3), (4, 1, 3, 2)])
def test_lif_scan_matches_step_by_step_formula(shape: tuple[int, ...], signed: bool) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    current = torch.randn(shape, generator=generator) * 1.5
    alpha = torch.rand(shape[2], generator=generator)
    out = kernels.lif_scan(current, alpha, threshold=0.8, signed=signed)
    expected = _numpy_lif(current.numpy(), alpha.numpy(), 0.8, signed)
    assert out.dtype == current.dtype and out.shape == current.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    assert out.abs().sum() > 0


def test_lif_scan_with_unit_leak_is_an_if_neuron_that_fires_on_exact_threshold() -> None:
    # Pooled spikes arriving as exact thirds reach the threshold exactly after three steps.
    third = torch.tensor(1.0 / 3.0, dtype=torch.float32)
    current = torch.full((6, 1, 1), float(third))
    out = kernels.lif_scan(current, torch.ones(1))
    reached = float((third + third) + third) >= 1.0
    assert out.flatten().tolist()[2] == float(reached)


def test_lif_scan_soft_reset_is_not_decayed() -> None:
    current = torch.tensor([1.5, 0.0, 0.0]).view(3, 1, 1)
    out = kernels.lif_scan(current, torch.tensor([0.5]), signed=False)
    # u1 = 1.5 -> spike; u2 = 0.5*1.5 + 0 - 1 = -0.25; u3 = 0.5*(-0.25) - 0 = -0.125
    assert out.flatten().tolist() == [1.0, 0.0, 0.0]
    signed = kernels.lif_scan(-current, torch.tensor([0.5]), signed=True)
    assert signed.flatten().tolist() == [-1.0, 0.0, 0.0]


def test_lif_scan_handles_non_contiguous_inputs() -> None:
    base = torch.randn(3, 6, 4, 5)  # [B, T, C, X] -> time-first view
    current = base.transpose(0, 1)
    alpha = torch.rand(8)[::2]
    assert not current.is_contiguous() and not alpha.is_contiguous()
    out = kernels.lif_scan(current, alpha)
    np.testing.assert_array_equal(out.numpy(), _numpy_lif(current.contiguous().numpy(), alpha.numpy(), 1.0, False))


def test_lif_scan_half_inputs_keep_float32_state() -> None:
    current = torch.randn(6, 2, 3, 4).to(torch.bfloat16)
    alpha = torch.rand(3)
    out = kernels.lif_scan(current, alpha, signed=True)
    assert out.dtype == torch.bfloat16
    expected = _numpy_lif(current.float().numpy(), alpha.numpy(), 1.0, True)
    np.testing.assert_array_equal(out.float().numpy(), expected)


def _smooth_binary(v: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(4 * (v - 1))


def _smooth_signed(v: torch.Tensor) -> torch.Tensor:
    return torch.tanh(2 * v) * torch.sigmoid(4 * (v.abs() - 1))


@pytest.mark.parametrize("spike_fn", [_smooth_binary, _smooth_signed])
def test_lif_scan_reference_gradcheck(spike_fn) -> None:
    generator = torch.Generator().manual_seed(0)
    current = torch.randn(5, 2, 3, 2, dtype=torch.float64, generator=generator).requires_grad_()
    alpha = torch.rand(3, dtype=torch.float64, generator=generator).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, a: lif_scan_reference(c, a, spike_fn=spike_fn), (current, alpha))


def test_lif_scan_gradients_reach_current_and_alpha_through_the_surrogate() -> None:
    current = torch.randn(6, 2, 3, requires_grad=True)
    alpha = torch.full((3,), 0.9, requires_grad=True)
    kernels.lif_scan(current, alpha).sum().backward()
    assert current.grad.abs().sum() > 0 and alpha.grad.abs().sum() > 0
    # The last step's current only reaches its own spike: dL/dI_T = surrogate(u_T).
    assert torch.all(current.grad[-1] > 0)


# ---------------------------------------------------------------- spikgru_scan


@pytest.mark.parametrize(("gates", "signed"), [(2, True), (2, False), (1, True), (1, False)])
@pytest.mark.parametrize(("T", "B", "H"), [(1, 1, 1), (9, 3, 5), (6, 2, 8)])
def test_spikgru_scan_matches_step_by_step_formula(gates: int, signed: bool, T: int, B: int, H: int) -> None:
    generator = torch.Generator().manual_seed(T * 100 + B * 10 + H)
    blocks = gates + 1
    proj = torch.randn(T, B, blocks * H, dtype=torch.float64, generator=generator) * 2
    U = torch.randn(blocks * H, H, dtype=torch.float64, generator=generator)
    alpha = torch.rand(H, dtype=torch.float64, generator=generator)
    b_ui = torch.randn(H, dtype=torch.float64, generator=generator)
    out = kernels.spikgru_scan(proj, U, alpha, b_ui, gates=gates, signed=signed, threshold=0.9)
    expected = _numpy_spikgru(proj.numpy(), U.numpy(), alpha.numpy(), b_ui.numpy(), gates, signed, 0.9)
    assert out.shape == (T, B, H) and out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), expected)


def test_spikgru_scan_reset_gate_scales_the_recurrent_bias() -> None:
    """With r = sigmoid(-inf) = 0 the recurrent candidate (including b_ui) must vanish."""
    T, B, H = 4, 1, 2
    proj = torch.zeros(T, B, 3 * H)
    proj[:, :, :H] = -30.0  # z ~ 0: v follows i
    proj[:, :, H : 2 * H] = -100.0  # r = 0
    proj[:, :, 2 * H :] = 0.3
    out = kernels.spikgru_scan(proj, torch.ones(3 * H, H), torch.zeros(H), torch.full((H,), 5.0), signed=False)
    assert out.sum() == 0  # i = 0.3 every step: never reaches the threshold, whatever b_ui
    proj[:, :, H : 2 * H] = 100.0  # r = 1: b_ui = 5 now drives i over the threshold from step 2 on
    out = kernels.spikgru_scan(proj, torch.ones(3 * H, H), torch.zeros(H), torch.full((H,), 5.0), signed=False)
    assert out[1:].sum() > 0


@pytest.mark.parametrize("gates", [1, 2])
@pytest.mark.parametrize("spike_fn", [_smooth_binary, _smooth_signed])
def test_spikgru_scan_reference_gradcheck(gates: int, spike_fn) -> None:
    generator = torch.Generator().manual_seed(gates)
    T, B, H = 4, 2, 3
    blocks = gates + 1
    inputs = (
        torch.randn(T, B, blocks * H, dtype=torch.float64, generator=generator).requires_grad_(),
        (torch.randn(blocks * H, H, dtype=torch.float64, generator=generator) / math.sqrt(H)).requires_grad_(),
        torch.rand(H, dtype=torch.float64, generator=generator).requires_grad_(),
        torch.randn(H, dtype=torch.float64, generator=generator).requires_grad_(),
    )
    assert torch.autograd.gradcheck(
        lambda p, U, a, b: spikgru_scan_reference(p, U, a, b, gates=gates, spike_fn=spike_fn), inputs
    )


def test_spikgru_scan_non_contiguous_and_half_inputs() -> None:
    T, B, H = 5, 2, 4
    proj = torch.randn(B, T, 3 * H).transpose(0, 1)
    U, alpha, b_ui = torch.randn(3 * H, H).T.contiguous().T, torch.rand(H), torch.randn(H)
    assert not proj.is_contiguous()
    out = kernels.spikgru_scan(proj, U, alpha, b_ui)
    torch.testing.assert_close(out, kernels.spikgru_scan(proj.contiguous(), U.contiguous(), alpha, b_ui))
    half = kernels.spikgru_scan(proj.to(torch.float16), U, alpha, b_ui)
    assert half.dtype == torch.float16 and half.shape == (T, B, H)


# ---------------------------------------------------------------- documented errors


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: kernels.spike(torch.zeros(2), threshold=0.0), ValueError, "threshold must be"),
        (lambda: kernels.signed_spike(torch.zeros(2), gamma=-1.0), ValueError, "gamma"),
        (lambda: kernels.lif_scan(torch.zeros(3, 2), torch.ones(2)), ValueError, r"\[T, B, C, \*spatial\]"),
        (lambda: kernels.lif_scan(torch.zeros(0, 2, 3), torch.ones(3)), ValueError, "T = 0"),
        (lambda: kernels.lif_scan(torch.zeros(3, 2, 3), torch.ones(4)), ValueError, r"alpha must have shape \[C\]"),
        (lambda: kernels.lif_scan(torch.zeros(3, 2, 3, dtype=torch.int64), torch.ones(3)), TypeError, "floating"),
        (lambda: kernels.lif_scan(torch.zeros(3, 2, 3), torch.ones(3, device="meta")), ValueError, "is on meta"),
        (
            lambda: kernels.spikgru_scan(
                torch.zeros(3, 2, 12), torch.zeros(12, 4), torch.ones(4), torch.ones(4), gates=3
            ),
            ValueError,
            "gates must be 1 or 2",
        ),
        (
            lambda: kernels.spikgru_scan(
                torch.zeros(3, 2, 12), torch.zeros(12, 4), torch.ones(4), torch.ones(4), gates=1
            ),
            ValueError,
            r"proj must be \[T, B, 2H\]",
        ),
        (
            lambda: kernels.spikgru_scan(torch.zeros(3, 2, 12), torch.zeros(4, 12), torch.ones(4), torch.ones(4)),
            ValueError,
            r"U must be \[3H, H\]",
        ),
        (
            lambda: kernels.spikgru_scan(torch.zeros(3, 2, 12), torch.zeros(12, 4), torch.ones(4), torch.ones(3)),
            ValueError,
            r"b_ui must be \[H\]",
        ),
        (
            lambda: kernels.spikgru_scan(torch.zeros(3, 2, 12), torch.zeros(12, 4), torch.ones(2, 2), torch.ones(4)),
            ValueError,
            r"alpha must be \[H\]",
        ),
    ],
)
def test_documented_errors(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_spike_values_are_identical_with_and_without_autograd() -> None:
    v = torch.randn(4, 50) * 2
    for fire in (kernels.spike, kernels.signed_spike):
        with_grad = fire(v.clone().requires_grad_(), 0.9)
        with torch.no_grad():
            without = fire(v.clone().requires_grad_(), 0.9)
        assert with_grad.requires_grad and not without.requires_grad
        assert torch.equal(with_grad.detach(), without) and torch.equal(without, fire(v, 0.9))
