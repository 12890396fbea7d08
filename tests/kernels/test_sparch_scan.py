"""`sparch_scan`: the reference, the backward algorithm of its kernels, and the kernels themselves.

- the boxcar spike at its window edges (values from the design note's check of the original), and without
  autograd the step alone;
- a float64 transcription of the reverse-time loops that `sparch_scan.cu` implements, compared with autograd
  through `sparch_scan_reference` for every variant (LIF, RLIF, adLIF, RadLIF, the non-spiking readout);
- the real kernels (`kernel_device`: the strict host tier everywhere, CuPy on a GPU) against the reference,
  forward (spikes bit-exact: same float32 operation order, same GEMM) and gradients, on random shapes and all
  three dtypes.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from zoo.kernels import resolve_backend, sparch_scan, sparch_scan_reference

scan_module = importlib.import_module("zoo.kernels.sparch_scan")

THRESHOLD = 1.0
VARIANTS = {
    "lif": (False, False, True),
    "rlif": (False, True, True),
    "adlif": (True, False, True),
    "radlif": (True, True, True),
    "readout": (False, False, False),
}
"""variant: (adaptive, recurrent, spiking)."""


A_STABLE = (0.0, 1.0)
"""Subthreshold coupling a: the part of sparch's range [-1, 1] (zoo.models.sparch.A_RANGE) where the (u, w)
recurrence stays bounded. For a < beta - 1 its step map has a real eigenvalue above 1 (about 1.4 at a = -1),
so over T = 100 steps u grows to ~1e14 and float16 overflows whatever the kernel does."""


def _inputs(variant, steps, batch, hidden, dtype=torch.float64, device="cpu", seed=0):
    """Random sparch-like inputs: parameters inside their clamp ranges, U[0,1) initial states, some spiking."""
    adaptive, recurrent, spiking = VARIANTS[variant]
    g = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)

    tensors = {
        "current": 2.0 + 3.0 * torch.randn(steps, batch, hidden, generator=g, dtype=torch.float64),
        "alpha": uniform(hidden, 0.8187, 0.9608),
        "u0": uniform((batch, hidden), 0, 1),
        "s0": uniform((batch, hidden), 0, 1) if spiking else torch.zeros(batch, hidden, dtype=torch.float64),
    }
    if adaptive:
        tensors.update(
            beta=uniform(hidden, 0.9672, 0.9917),
            a=uniform(hidden, *A_STABLE),
            b=uniform(hidden, 0, 2),
            w0=uniform((batch, hidden), 0, 1),
        )
    if recurrent:
        weight = torch.linalg.qr(torch.randn(hidden, hidden, generator=g, dtype=torch.float64))[0].contiguous()
        tensors["recurrent"] = weight.fill_diagonal_(0.0)
    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return {
        name: value.to(device=device, dtype=dtype if name == "current" else state_dtype).requires_grad_(True)
        for name, value in tensors.items()
    }


def _run(scan, tensors, spiking, **options):
    return scan(
        tensors["current"],
        tensors["alpha"],
        tensors["u0"],
        tensors["s0"],
        beta=tensors.get("beta"),
        a=tensors.get("a"),
        b=tensors.get("b"),
        w0=tensors.get("w0"),
        recurrent=tensors.get("recurrent"),
        threshold=THRESHOLD,
        spiking=spiking,
        **options,
    )


def _autograd(scan, tensors, spiking, grad_spikes, grad_membrane, **options):
    spikes, membrane = _run(scan, tensors, spiking, **options)
    outputs, grads = [membrane], [grad_membrane]
    if spiking:
        outputs.append(spikes)
        grads.append(grad_spikes)
    names = sorted(tensors)
    values = torch.autograd.grad(outputs, [tensors[name] for name in names], grads, allow_unused=True)
    return spikes, membrane, dict(zip(names, values, strict=True))


def _relative_error(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def test_boxcar_spike_window_edges():
    x = torch.tensor([-0.6, -0.5, -0.49, 0.0, 0.5, 0.51], requires_grad=True)
    spikes = scan_module.boxcar_spike(x)
    spikes.sum().backward()
    assert spikes.tolist() == [0, 0, 0, 0, 1, 1]
    assert x.grad.tolist() == [0, 0, 1, 1, 1, 0]


class _AtenCalls(TorchDispatchMode):
    """Records the name of every aten operator run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_boxcar_spike_without_autograd_is_the_step_alone():
    """Inference skips the straight-through term (it cost sparch's CPU inference 14-24 %)."""
    x = torch.tensor([-0.6, -0.5, -0.49, 0.0, 0.5, 0.51], requires_grad=True)
    with torch.no_grad(), _AtenCalls() as calls:
        spikes = scan_module.boxcar_spike(x)
    assert spikes.tolist() == [0, 0, 0, 0, 1, 1] and not spikes.requires_grad
    assert calls.names == ["gt", "_to_copy"], calls.names
    frozen = x.detach()
    with _AtenCalls() as calls:
        scan_module.boxcar_spike(frozen)
    assert calls.names == ["gt", "_to_copy"], calls.names


def test_reference_reproduces_the_equations_step_by_step():
    """Two RadLIF steps written out by hand (sparch.md 1.3): w first, then u with the new w, s = 1[u - 1 > 0]."""
    t = _inputs("radlif", steps=2, batch=1, hidden=2, seed=5)
    t = {k: v.detach() for k, v in t.items()}
    spikes, membrane = _run(sparch_scan_reference, t, True)
    u, w, s = t["u0"], t["w0"], t["s0"]
    for step in range(2):
        w = t["beta"] * w + t["a"] * u + t["b"] * s
        u = t["alpha"] * (u - s) + (1 - t["alpha"]) * (t["current"][step] + s @ t["recurrent"] - w)
        s = (u - 1 > 0).double()
        assert torch.equal(membrane[step], u) and torch.equal(spikes[step], s)


def _reverse_time_gradients(tensors, grad_spikes, grad_membrane, adaptive, spiking):
    """The backward algorithm of `sparch_scan.cu` / `SparchScanCuPy`, transcribed in float64 without autograd.

    Forward saving u_t, w_t, s_t and I_t + r_t; then for t = T-1..0, from du = dw = 0:
        ds = g_s - alpha du + b dw + dI_{t+1} @ V~^T
        du = g_u + 1[-0.5 < u_t - 1 <= 0.5] ds + alpha du + a dw;   dw = -(1 - alpha) du + beta dw
        dI_t = (1 - alpha) du;   d alpha += du ((u_{t-1} - s_{t-1}) - (I_t + r_t - w_t))
        d beta += dw w_{t-1};  d a += dw u_{t-1};  d b += dw s_{t-1}
    then du0 = alpha du + a dw, dw0 = beta dw, ds0 = -alpha du + b dw + dI_0 @ V~^T, dV~ = S_prev^T dI.
    """
    t = {name: value.detach() for name, value in tensors.items()}
    steps, batch, hidden = t["current"].shape
    zeros = torch.zeros(batch, hidden, dtype=torch.float64)
    alpha = t["alpha"]
    beta, a, b = (t.get(name, torch.zeros(hidden, dtype=torch.float64)) for name in ("beta", "a", "b"))
    weight = t.get("recurrent")
    u, w, s = t["u0"], t.get("w0", zeros), t["s0"]
    saved = {"u": [], "w": [], "s": [], "drive": []}
    for step in range(steps):
        drive = t["current"][step] + (s @ weight if weight is not None else 0)
        w = beta * w + a * u + b * s if adaptive else zeros
        u = alpha * (u - s) + (1 - alpha) * (drive - w)
        s = (u - THRESHOLD > 0).double() if spiking else zeros
        for name, value in (("u", u), ("w", w), ("s", s), ("drive", drive)):
            saved[name].append(value)
    grad_current = torch.zeros_like(t["current"])
    grads = {name: torch.zeros(hidden, dtype=torch.float64) for name in ("alpha", "beta", "a", "b")}
    du, dw = zeros, zeros
    for step in reversed(range(steps)):
        u_prev = saved["u"][step - 1] if step else t["u0"]
        w_prev = saved["w"][step - 1] if step else t.get("w0", zeros)
        s_prev = saved["s"][step - 1] if step else t["s0"]
        recurrent_grad = grad_current[step + 1] @ weight.T if weight is not None and step + 1 < steps else 0
        ds = grad_spikes[step] - alpha * du + b * dw + recurrent_grad
        x = saved["u"][step] - THRESHOLD
        window = ((x > -0.5) & (x <= 0.5)).double() if spiking else zeros
        du = grad_membrane[step] + window * ds + alpha * du + a * dw
        dw = -(1 - alpha) * du + beta * dw if adaptive else zeros
        grad_current[step] = (1 - alpha) * du
        grads["alpha"] += (du * ((u_prev - s_prev) - (saved["drive"][step] - saved["w"][step]))).sum(0)
        grads["beta"] += (dw * w_prev).sum(0)
        grads["a"] += (dw * u_prev).sum(0)
        grads["b"] += (dw * s_prev).sum(0)
    grads.update(current=grad_current, u0=alpha * du + a * dw, s0=-alpha * du + b * dw)
    if adaptive:
        grads["w0"] = beta * dw
    if weight is not None:
        grads["s0"] = grads["s0"] + grad_current[0] @ weight.T
        previous = torch.stack([t["s0"], *saved["s"][:-1]]).reshape(-1, hidden)
        grads["recurrent"] = previous.T @ grad_current.reshape(-1, hidden)
    return {name: grads[name] for name in tensors}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reverse_time_backward_matches_autograd_float64(variant):
    adaptive, _, spiking = VARIANTS[variant]
    tensors = _inputs(variant, steps=9, batch=3, hidden=6, seed=len(variant))
    grad_spikes = torch.randn(9, 3, 6, dtype=torch.float64)
    grad_membrane = torch.randn(9, 3, 6, dtype=torch.float64)
    spikes, _, expected = _autograd(sparch_scan_reference, tensors, spiking, grad_spikes, grad_membrane)
    if spiking:
        rate = spikes.mean().item()
        assert 0.02 < rate < 0.95, f"inputs must make some but not all neurons spike, got a rate of {rate}"
    got = _reverse_time_gradients(tensors, grad_spikes, grad_membrane, adaptive, spiking)
    for name, value in expected.items():
        assert _relative_error(got[name], value) < 1e-12, f"d{name}: relative error {_relative_error(got[name], value)}"


def test_invalid_inputs_are_named():
    t = {k: v.detach() for k, v in _inputs("adlif", steps=3, batch=2, hidden=4).items()}
    with pytest.raises(ValueError, match=r"current must be \[T, B, H\]"):
        sparch_scan(t["current"][0], t["alpha"], t["u0"], t["s0"])
    with pytest.raises(ValueError, match=r"alpha must be \[H\] = \[4\], got \(3,\)"):
        sparch_scan(t["current"], t["alpha"][:3], t["u0"], t["s0"])
    with pytest.raises(ValueError, match=r"s0 must be \[B, H\] = \[2, 4\]"):
        sparch_scan(t["current"], t["alpha"], t["u0"], t["s0"].T)
    with pytest.raises(ValueError, match="must be given together"):
        sparch_scan(t["current"], t["alpha"], t["u0"], t["s0"], beta=t["beta"])
    with pytest.raises(ValueError, match=r"recurrent must be \[H, H\] = \[4, 4\]"):
        sparch_scan(t["current"], t["alpha"], t["u0"], t["s0"], recurrent=torch.zeros(4, 3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ the kernels


TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


HOST_TIER_ELEMENTS = 100_000
"""Largest T*B*H the strict host tier runs: it copies every buffer twice per launch (guard bytes), and the
recurrent variants launch once per step with the whole sequences."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(("steps", "batch", "hidden"), [(1, 1, 1), (37, 5, 129), (100, 3, 40), (100, 16, 300)])
def test_kernels_match_reference(kernel_device, kernel_backend, variant, dtype, steps, batch, hidden):
    if kernel_device == "cpu" and steps * batch * hidden > HOST_TIER_ELEMENTS:
        pytest.skip(f"T*B*H = {steps * batch * hidden} is above the strict host tier's {HOST_TIER_ELEMENTS}")
    torch.backends.cuda.matmul.allow_tf32 = False
    _, _, spiking = VARIANTS[variant]
    tensors = _inputs(variant, steps, batch, hidden, dtype=dtype, device=kernel_device, seed=steps + hidden)
    g = torch.Generator().manual_seed(1)
    grad_spikes = torch.randn(steps, batch, hidden, generator=g).to(kernel_device, dtype)
    grad_membrane = torch.randn(steps, batch, hidden, generator=g).to(kernel_device, dtype)
    spikes, membrane, got = _autograd(sparch_scan, tensors, spiking, grad_spikes, grad_membrane, backend=kernel_backend)
    ref_spikes, ref_membrane, expected = _autograd(
        sparch_scan, tensors, spiking, grad_spikes, grad_membrane, backend="torch"
    )
    assert spikes.dtype == membrane.dtype == dtype
    assert torch.equal(spikes, ref_spikes), f"{(spikes != ref_spikes).sum().item()} spikes differ"
    assert torch.equal(membrane, ref_membrane)
    for name, value in expected.items():
        error = _relative_error(got[name], value)
        assert error < TOLERANCE[dtype], f"d{name}: relative error {error:.3e}"


def test_kernel_spikes_need_the_membrane_strictly_above_the_threshold(kernel_device, kernel_backend):
    """u_0 = alpha (u - s) + (1 - alpha) I lands exactly on the threshold (0.5 * 1 + 0.5 * 1): no spike (x > 0)."""
    ones = torch.ones(2, 3, device=kernel_device)
    current = torch.tensor([1.0, 1.0 + 2**-20, 1.0 - 2**-20], device=kernel_device).expand(1, 2, 3).contiguous()
    alpha = torch.full((3,), 0.5, device=kernel_device)
    spikes, membrane = sparch_scan(current, alpha, ones, 0 * ones, threshold=1.0, backend=kernel_backend)
    reference = sparch_scan_reference(current, alpha, ones, 0 * ones, threshold=1.0)
    assert membrane[0, 0].tolist() == [1.0, 1.0 + 2**-21, 1.0 - 2**-21]
    assert spikes[0, 0].tolist() == [0.0, 1.0, 0.0]
    assert torch.equal(spikes, reference[0]) and torch.equal(membrane, reference[1])


def test_kernel_boxcar_window_edges(kernel_device, kernel_backend):
    """u_0 - threshold lands exactly on the window's edges +0.5 (inside) and -0.5 (outside), and on 0."""
    current = torch.tensor([[[2.0, 0.0, 1.0]]], device=kernel_device, requires_grad=True)  # u_0 = 0.5 + 0.5 I
    alpha = torch.full((3,), 0.5, device=kernel_device)
    ones = torch.ones(1, 3, device=kernel_device)
    grads = []
    for backend in (kernel_backend, "torch"):
        spikes, membrane = sparch_scan(current, alpha, ones, 0 * ones, threshold=1.0, backend=backend)
        assert membrane.flatten().tolist() == [1.5, 0.5, 1.0]
        grads.append(torch.autograd.grad(spikes.sum(), current)[0])
    assert grads[0].flatten().tolist() == [0.5, 0.0, 0.5]  # window * (1 - alpha)
    assert torch.equal(grads[0], grads[1])


def test_kernel_forward_without_grad_and_auto_dispatch(kernel_device, kernel_backend, monkeypatch):
    monkeypatch.delenv("JELLYZOO_KERNEL_BACKEND", raising=False)
    tensors = {
        k: v.detach() for k, v in _inputs("radlif", 20, 4, 64, dtype=torch.float32, device=kernel_device).items()
    }
    assert resolve_backend("auto", *tensors.values()) == kernel_backend
    auto = _run(sparch_scan, tensors, True)
    reference = _run(sparch_scan, tensors, True, backend="torch")
    assert all(torch.equal(x, y) for x, y in zip(auto, reference, strict=True))
