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

from zoo.kernels.backend import Backend, resolve_backend, state_dtype
from zoo.kernels.cupy_runtime import elementwise_grid, kernel_name, launch
from zoo.kernels.spike import check_spike_parameters, signed_spike_reference, spike_reference

__all__ = ["spikgru_scan", "spikgru_scan_reference"]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


def check_spikgru_inputs(
    proj: torch.Tensor, U: torch.Tensor, alpha: torch.Tensor, b_ui: torch.Tensor, gates: int
) -> None:
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
        raise ValueError(
            f"spikgru_scan: U must be [{blocks}H, H] = [{blocks * hidden}, {hidden}], got {tuple(U.shape)}"
        )
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
    compute_dtype = state_dtype(proj.dtype)
    hidden = alpha.shape[0]
    weight, leak, bias = U.to(compute_dtype), alpha.to(compute_dtype), b_ui.to(compute_dtype)
    s = torch.zeros(proj.shape[1], hidden, dtype=compute_dtype, device=proj.device)
    i = torch.zeros_like(s)
    v = torch.zeros_like(s)
    spikes = []
    for proj_t in proj.to(compute_dtype).unbind(0):
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


_SOURCE = "spikgru_scan.cu"


class SpikGRUScanCuPy(torch.autograd.Function):
    """CuPy SpikGRU recurrence: per step one cuBLAS GEMM (s_{t-1} @ U^T, float32) and one fused elementwise kernel.

    Forward, for t = 0..T-1: rec = s_{t-1} @ U^T into a preallocated [B, (g+1)H] float32 buffer, then
    `spikgru_forward` computes the gates, i, v and the spike of every (b, h) with the float32 op order of
    `spikgru_scan_reference`. States i, v, s are float32; proj may be float32/float16/bfloat16 and U, alpha,
    b_ui are cast to float32 once. With autograd recording, it keeps for backward (all float32 [T, B, H]):
    v, z, i, and for gates=2 also r and c = rec_i + b_ui, plus the spikes it returns; that is 3 (gates=1)
    or 5 (gates=2) float32 copies of the output size. Without autograd only two ping-pong [B, H] states exist.

    Backward runs in reverse time: per step `spikgru_backward` (elementwise, carrying dL/dv and dL/di) and one
    GEMM dRec_t @ U for the gradient reaching s_{t-1}. dU is one GEMM dRec^T S_prev over all T*B rows at the end;
    d alpha and d b_ui are accumulated per (b, h) by the kernel and summed over B. Temporaries: dRec
    [T, B, (g+1)H] float32 and S_prev [T, B, H] float32.
    """

    @classmethod
    def apply(cls, proj, U, alpha, b_ui, gates, signed, threshold, gamma):
        # Inside forward grad mode is always off, so the caller's mode decides here whether to keep saves.
        return super().apply(proj, U, alpha, b_ui, gates, signed, threshold, gamma, torch.is_grad_enabled())

    @staticmethod
    def forward(ctx, proj, U, alpha, b_ui, gates, signed, threshold, gamma, recording):
        proj = proj.contiguous()
        steps, batch, width = proj.shape
        hidden = alpha.shape[0]
        weight = U.detach().to(torch.float32).contiguous()
        leak = alpha.detach().to(torch.float32).contiguous()
        bias = b_ui.detach().to(torch.float32).contiguous()
        saving = recording and any(ctx.needs_input_grad[:4])
        f32 = {"dtype": torch.float32, "device": proj.device}

        rec = torch.empty(batch, width, **f32)
        s_state = torch.zeros(2, batch, hidden, **f32)
        slots = steps if saving else 2
        i_state = torch.empty(slots, batch, hidden, **f32)
        v_state = torch.empty(slots, batch, hidden, **f32)
        z_save = torch.empty(steps if saving else 1, batch, hidden, **f32)
        r_save = torch.empty(steps if saving and gates == 2 else 1, batch, hidden, **f32)
        c_save = torch.empty_like(r_save)
        spikes = torch.empty(steps, batch, hidden, dtype=proj.dtype, device=proj.device)

        function = kernel_name("spikgru_forward", proj.dtype)
        grid, block = elementwise_grid(batch * hidden)
        weight_t = weight.t()
        for t in range(steps):
            now, before = t % slots, (t - 1) % slots
            s_prev, s_out = s_state[(t + 1) % 2], s_state[t % 2]
            torch.mm(s_prev, weight_t, out=rec)
            gate_slot = t if saving else 0
            launch(
                _SOURCE,
                function,
                proj.device,
                grid,
                block,
                (
                    proj[t], rec, leak, bias, s_prev, i_state[before], v_state[before], s_out, i_state[now],
                    v_state[now], spikes[t], z_save[gate_slot], r_save[gate_slot if gates == 2 else 0],
                    c_save[gate_slot if gates == 2 else 0], batch, hidden, gates, int(t > 0), int(signed),
                    int(saving), threshold,
                ),
            )
        if saving:
            ctx.save_for_backward(spikes, weight, leak, v_state, z_save, i_state, r_save, c_save)
            ctx.settings = (gates, signed, threshold, gamma, U.dtype, alpha.dtype, b_ui.dtype)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        spikes, weight, leak, v_all, z_all, i_all, r_all, c_all = ctx.saved_tensors
        gates, signed, threshold, gamma, u_dtype, alpha_dtype, bias_dtype = ctx.settings
        grad_spikes = grad_spikes.contiguous()
        steps, batch, hidden = spikes.shape
        width = (gates + 1) * hidden
        f32 = {"dtype": torch.float32, "device": spikes.device}

        carry = torch.zeros(batch, hidden, **f32)
        gv = torch.zeros(batch, hidden, **f32)
        gi = torch.zeros(batch, hidden, **f32)
        acc_alpha = torch.zeros(batch, hidden, **f32)
        acc_bias = torch.zeros(batch, hidden, **f32)
        drec = torch.empty(steps, batch, width, **f32)
        dproj = torch.empty(steps, batch, width, dtype=grad_spikes.dtype, device=spikes.device)

        function = kernel_name("spikgru_backward", grad_spikes.dtype)
        grid, block = elementwise_grid(batch * hidden)
        for t in reversed(range(steps)):
            next_t, prev_t = min(t + 1, steps - 1), max(t - 1, 0)
            gate_t = t if gates == 2 else 0
            launch(
                _SOURCE,
                function,
                spikes.device,
                grid,
                block,
                (
                    grad_spikes[t], carry, gv, gi, z_all[t], z_all[next_t], v_all[t], v_all[prev_t], i_all[t],
                    i_all[prev_t], r_all[gate_t], c_all[gate_t], leak, dproj[t], drec[t], acc_alpha, acc_bias,
                    batch, hidden, gates, int(t < steps - 1), int(t > 0), int(signed), threshold, gamma,
                ),
            )
            if t > 0:
                torch.mm(drec[t], weight, out=carry)

        grad_U = grad_alpha = grad_bias = None
        if ctx.needs_input_grad[1]:
            s_prev = torch.zeros(steps, batch, hidden, **f32)
            s_prev[1:] = spikes[:-1]
            grad_U = (drec.view(steps * batch, width).t() @ s_prev.view(steps * batch, hidden)).to(u_dtype)
        if ctx.needs_input_grad[2]:
            grad_alpha = acc_alpha.sum(0).to(alpha_dtype)
        if ctx.needs_input_grad[3]:
            grad_bias = acc_bias.sum(0).to(bias_dtype)
        grad_proj = dproj if ctx.needs_input_grad[0] else None
        return grad_proj, grad_U, grad_alpha, grad_bias, None, None, None, None, None


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
