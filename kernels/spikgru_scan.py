"""The SpikGRU recurrence (design note spikgru.md, section 1.5), given hoisted input projections.

The feed-forward projections proj = x W^T + b of all T steps are computed beforehand in one GEMM. Per
step, from zero states, with rec = s_{t-1} @ U^T split into the same blocks as proj:

    gates = 2 (SpikGRU2), blocks (z, r, i):
        z_t = sigmoid(pz_t + rec_z)
        r_t = sigmoid(pr_t + rec_r)
        i_t = alpha * i_{t-1} + pi_t + r_t * (rec_i + b_ui)
    gates = 1 (SpikGRU), blocks (z, i): as above without r (the factor is 1)

        v_t = z_t * v_{t-1} + (1 - z_t) * i_t - threshold * s_{t-1}
        s_t = signed_spike(v_t)  (signed=True, the "+" models)  or  spike(v_t)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from zoo.kernels.backend import Backend, resolve_backend
from zoo.kernels.spike import check_spike_parameters, signed_spike_reference, spike_reference

__all__ = ["spikgru_scan", "spikgru_scan_reference"]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


def check_spikgru_inputs(proj: torch.Tensor, U: torch.Tensor, alpha: torch.Tensor, b_ui: torch.Tensor, gates: int) -> None:
    """Raise a ValueError/TypeError naming the problem unless the inputs meet the `spikgru_scan` contract."""
    if gates not in (1, 2):
        raise ValueError(f"spikgru_scan: gates must be 1 or 2, got {gates!r}")
    if not proj.is_floating_point():
        raise TypeError(f"spikgru_scan: proj must be a floating tensor, got {proj.dtype}")
    if alpha.dim() != 1:
        raise ValueError(f"spikgru_scan: alpha must be [H], got shape {tuple(alpha.shape)}")
    hidden = alpha.shape[0]
    blocks = gates + 1
    if proj.dim() != 3 or proj.shape[2] != blocks * hidden or proj.shape[0] == 0:
        raise ValueError(
            f"spikgru_scan: proj must be [T, B, {blocks}H] = [T, B, {blocks * hidden}] with T >= 1 "
            f"for gates={gates} and H={hidden}, got {tuple(proj.shape)}"
        )
    if tuple(U.shape) != (blocks * hidden, hidden):
        raise ValueError(f"spikgru_scan: U must be [{blocks}H, H] = [{blocks * hidden}, {hidden}], got {tuple(U.shape)}")
    if tuple(b_ui.shape) != (hidden,):
        raise ValueError(f"spikgru_scan: b_ui must be [H] = [{hidden}], got {tuple(b_ui.shape)}")
    for name, tensor in (("U", U), ("alpha", alpha), ("b_ui", b_ui)):
        if tensor.device != proj.device:
            raise ValueError(f"spikgru_scan: {name} is on {tensor.device} but proj is on {proj.device}")


def spikgru_scan_reference(
    proj: torch.Tensor,
    U: torch.Tensor,
    alpha: torch.Tensor,
    b_ui: torch.Tensor,
    gates: int = 2,
    signed: bool = True,
    threshold: float = 1.0,
    gamma: float = 10.0,
    spike_fn: SpikeFn | None = None,
) -> torch.Tensor:
    """Pure-PyTorch SpikGRU recurrence: a Python loop over time (the oracle and the CPU path).

    Args:
        proj: hoisted input projections, [T, B, 3H] ordered (z, r, i) for gates=2, [T, B, 2H] (z, i) for gates=1.
        U: recurrent weights, [3H, H] (or [2H, H]) in the same block order; the term is s @ U.T.
        alpha: leak of the input current i, [H].
        b_ui: bias of the recurrent candidate term, [H] (scaled by r together with U_i s).
        gates, signed, threshold, gamma: variant and spike settings.
        spike_fn: replaces the spike function (tests use a smooth one for gradcheck).

    Returns:
        spikes s, [T, B, H], dtype of `proj`.
    """
    check_spikgru_inputs(proj, U, alpha, b_ui, gates)
    if spike_fn is None:
        fire = signed_spike_reference if signed else spike_reference
        spike_fn = partial(fire, threshold=threshold, gamma=gamma)
    state_dtype = torch.float32 if proj.dtype in (torch.float16, torch.bfloat16) else proj.dtype
    hidden = alpha.shape[0]
    weight, leak, bias = U.to(state_dtype), alpha.to(state_dtype), b_ui.to(state_dtype)
    s = torch.zeros(proj.shape[1], hidden, dtype=state_dtype, device=proj.device)
    i = torch.zeros_like(s)
    v = torch.zeros_like(s)
    spikes = []
    for proj_t in proj.to(state_dtype).unbind(0):
        recurrent = s @ weight.T
        if gates == 2:
            pz, pr, pi = proj_t.split(hidden, dim=1)
            rz, rr, ri = recurrent.split(hidden, dim=1)
            z = torch.sigmoid(pz + rz)
            r = torch.sigmoid(pr + rr)
            i = leak * i + pi + r * (ri + bias)
        else:
            pz, pi = proj_t.split(hidden, dim=1)
            rz, ri = recurrent.split(hidden, dim=1)
            z = torch.sigmoid(pz + rz)
            i = leak * i + pi + (ri + bias)
        v = z * v + (1 - z) * i - threshold * s
        s = spike_fn(v)
        spikes.append(s)
    return torch.stack(spikes).to(proj.dtype)


def spikgru_scan(
    proj: torch.Tensor,
    U: torch.Tensor,
    alpha: torch.Tensor,
    b_ui: torch.Tensor,
    gates: int = 2,
    signed: bool = True,
    threshold: float = 1.0,
    gamma: float = 10.0,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """SpikGRU recurrence over T steps (1- or 2-gate, binary or signed spikes).

    Args:
        proj: x W^T + b for all steps, [T, B, 3H] (gates=2, blocks z, r, i) or [T, B, 2H] (gates=1, blocks z, i).
        U: recurrent weight, [3H, H] or [2H, H] (`nn.Linear` convention: the term is s_{t-1} @ U.T).
        alpha: input-current leak, [H].
        b_ui: recurrent candidate bias, [H].
        gates: 2 (SpikGRU2) or 1 (SpikGRU).
        signed: signed spikes (the "+" variants) or binary.
        threshold, gamma: spike settings.
        backend: "auto", "torch" or "cupy".

    Returns:
        spikes, [T, B, H], dtype of `proj`.
    """
    check_spike_parameters(threshold, gamma)
    check_spikgru_inputs(proj, U, alpha, b_ui, gates)
    if resolve_backend(backend, proj, U, alpha, b_ui) == "cupy":
        return SpikGRUScanCuPy.apply(proj, U, alpha, b_ui, int(gates), bool(signed), float(threshold), float(gamma))
    return spikgru_scan_reference(proj, U, alpha, b_ui, gates, signed, threshold, gamma)
