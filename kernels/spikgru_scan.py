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

Kernels (``spikgru_scan.cu``): per step one GEMM rec = s_{t-1} @ U^T (float32) and one fused elementwise
`spikgru_forward` over (b, h) with the float32 operation order of the reference; states i, v, s are float32
whatever proj's dtype, and U, alpha, b_ui are cast to float32 once. Saved for backward (only when a gradient
will be needed, `needs_saving`; all float32 [T, B, H]): v, z, i, and for gates=2 also r and c = rec_i + b_ui,
plus the spikes it returns. The backward runs in reverse time: per step `spikgru_backward` (carrying dL/dv and
dL/di) and one GEMM dRec_t @ U; dU is one GEMM dRec^T S_prev over all T*B rows, d alpha and d b_ui are
accumulated per (b, h) by the kernel and summed over B.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from zoo.kernels.backend import Backend, needs_saving, resolve_backend, state_dtype
from zoo.kernels.launch import empty, launch
from zoo.kernels.spike import check_spike_parameters, signed_spike_reference, spike_reference

__all__ = ["spikgru_scan", "spikgru_scan_reference"]

SOURCE = "spikgru_scan.cu"
SpikeFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------- checks


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


# ------------------------------------------------------------------------------------------------- reference


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


# ------------------------------------------------------------------------------------------ kernel launches


def _launch_forward(proj, weight, leak, bias, gates: int, signed: bool, threshold: float, save: bool):
    """Forward over T steps (one GEMM s_{t-1} @ U^T and one `spikgru_forward` launch per step).

    proj [T, B, (g+1)H] contiguous; weight [(g+1)H, H], leak [H], bias [H] float32 contiguous. Returns spikes
    [T, B, H] in proj's dtype and, when `save`, the float32 [T, B, H] sequences v, z, i, r, c (r and c only for
    gates = 2) for backward; tensors not kept are [0]. Without `save` i and v live in two ping-pong slots.
    """
    steps, batch, width = proj.shape
    hidden = leak.shape[0]
    f32 = {"dtype": torch.float32, "device": proj.device}
    slots = steps if save else 2
    recurrent = torch.empty(batch, width, **f32)
    s_state = empty((2, batch, hidden), **f32)
    i_state, v_state = empty((slots, batch, hidden), **f32), empty((slots, batch, hidden), **f32)
    z_all = empty((steps, batch, hidden) if save else (0,), **f32)
    r_all = empty((steps, batch, hidden) if save and gates == 2 else (0,), **f32)
    c_all = empty(r_all.shape, **f32)
    spikes = empty((steps, batch, hidden), proj.dtype, proj.device)
    gated = save and gates == 2
    for t in range(steps):
        now, before = t % slots, (t - 1) % slots
        if t == 0:
            recurrent.zero_()
        else:
            torch.mm(s_state[before % 2], weight.t(), out=recurrent)
        launch(
            SOURCE,
            "spikgru_forward",
            threads=batch * hidden,
            dtype=proj.dtype,
            proj_t=proj[t],
            rec=recurrent,
            alpha=leak,
            b_ui=bias,
            s_prev=s_state[before % 2] if t else None,
            i_prev=i_state[before] if t else None,
            v_prev=v_state[before] if t else None,
            s_out=s_state[t % 2],
            i_out=i_state[now],
            v_out=v_state[now],
            spikes_t=spikes[t],
            z_out=z_all[t] if save else None,
            r_out=r_all[t] if gated else None,
            c_out=c_all[t] if gated else None,
            batch=batch,
            hidden=hidden,
            gates=gates,
            has_prev=int(t > 0),
            is_signed=int(signed),
            save_gates=int(save),
            threshold=threshold,
        )
    if not save:
        nothing = torch.empty(0, **f32)
        return spikes, nothing, nothing.clone(), nothing.clone(), r_all, c_all
    return spikes, v_state, z_all, i_state, r_all, c_all


def _launch_backward(
    grad_spikes, spikes, weight, leak, v_all, z_all, i_all, r_all, c_all, gates, signed, threshold, gamma
):
    """(dproj [T, B, (g+1)H] in the spikes' dtype, dU, d alpha, d b_ui in float32) in reverse time.

    Per step one `spikgru_backward` launch (carrying dL/dv and dL/di in place) and one GEMM dRec_t @ U for the
    gradient reaching s_{t-1}; dU is one GEMM dRec^T S_prev over all T*B rows at the end.
    """
    steps, batch, hidden = spikes.shape
    width = (gates + 1) * hidden
    f32 = {"dtype": torch.float32, "device": spikes.device}
    carry = torch.empty(batch, hidden, **f32)
    gv, gi = empty((batch, hidden), **f32), empty((batch, hidden), **f32)
    acc_alpha, acc_bias = torch.zeros(batch, hidden, **f32), torch.zeros(batch, hidden, **f32)
    drec = empty((steps, batch, width), **f32)
    dproj = empty((steps, batch, width), spikes.dtype, spikes.device)
    for t in reversed(range(steps)):
        has_next, has_prev = t + 1 < steps, t > 0
        launch(
            SOURCE,
            "spikgru_backward",
            threads=batch * hidden,
            dtype=spikes.dtype,
            grad_out_t=grad_spikes[t],
            carry=carry if has_next else None,
            gv=gv,
            gi=gi,
            z_t=z_all[t],
            z_next=z_all[t + 1] if has_next else None,
            v_t=v_all[t],
            v_prev=v_all[t - 1] if has_prev else None,
            i_t=i_all[t],
            i_prev=i_all[t - 1] if has_prev else None,
            r_t=r_all[t] if gates == 2 else None,
            c_t=c_all[t] if gates == 2 else None,
            alpha=leak,
            dproj_t=dproj[t],
            drec_t=drec[t],
            acc_alpha=acc_alpha,
            acc_bui=acc_bias,
            batch=batch,
            hidden=hidden,
            gates=gates,
            has_next=int(has_next),
            has_prev=int(has_prev),
            is_signed=int(signed),
            threshold=threshold,
            gamma=gamma,
        )
        if has_prev:
            torch.mm(drec[t], weight, out=carry)
    s_prev = torch.cat([torch.zeros(1, batch, hidden, **f32), spikes[:-1].float()])
    grad_weight = drec.view(steps * batch, width).t() @ s_prev.view(steps * batch, hidden)
    return dproj, grad_weight, acc_alpha.sum(0), acc_bias.sum(0)


# ------------------------------------------------------------------------------------- PyTorch operators


@torch.library.custom_op("jellyzoo::spikgru_scan_forward", mutates_args=())
def spikgru_scan_op(
    proj: torch.Tensor,
    U: torch.Tensor,
    alpha: torch.Tensor,
    b_ui: torch.Tensor,
    gates: int,
    signed: bool,
    threshold: float,
    gamma: float,
    save: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes [T, B, H], then the float32 v, z, i, r, c [T, B, H] kept for backward, each [0] when not kept)."""
    weight, leak, bias = (x.to(torch.float32).contiguous() for x in (U, alpha, b_ui))
    return _launch_forward(proj.contiguous(), weight, leak, bias, gates, signed, threshold, save)


@spikgru_scan_op.register_fake
def _(proj, U, alpha, b_ui, gates, signed, threshold, gamma, save):
    steps, batch, hidden = proj.shape[0], proj.shape[1], alpha.shape[0]
    sequence = (steps, batch, hidden)
    kept = [sequence if save else (0,)] * 3 + [sequence if save and gates == 2 else (0,)] * 2
    return proj.new_empty(sequence), *(proj.new_empty(shape, dtype=torch.float32) for shape in kept)


@torch.library.custom_op("jellyzoo::spikgru_scan_backward", mutates_args=())
def spikgru_scan_backward_op(
    grad_spikes: torch.Tensor,
    spikes: torch.Tensor,
    U: torch.Tensor,
    alpha: torch.Tensor,
    b_ui: torch.Tensor,
    v: torch.Tensor,
    z: torch.Tensor,
    i: torch.Tensor,
    r: torch.Tensor,
    c: torch.Tensor,
    gates: int,
    signed: bool,
    threshold: float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d proj in the spikes' dtype, dU, d alpha, d b_ui in the dtypes of U, alpha, b_ui)."""
    weight, leak = U.to(torch.float32).contiguous(), alpha.to(torch.float32).contiguous()
    grad_spikes = grad_spikes.to(spikes.dtype).contiguous()
    dproj, grad_weight, grad_alpha, grad_bias = _launch_backward(
        grad_spikes, spikes, weight, leak, v, z, i, r, c, gates, signed, threshold, gamma
    )
    return dproj, grad_weight.to(U.dtype), grad_alpha.to(alpha.dtype), grad_bias.to(b_ui.dtype)


@spikgru_scan_backward_op.register_fake
def _(grad_spikes, spikes, U, alpha, b_ui, v, z, i, r, c, gates, signed, threshold, gamma):
    steps, batch, hidden = spikes.shape
    dproj = spikes.new_empty((steps, batch, (gates + 1) * hidden))
    return dproj, torch.empty_like(U), torch.empty_like(alpha), torch.empty_like(b_ui)


def _setup_spikgru_scan(ctx, inputs, output) -> None:
    _, U, alpha, b_ui, gates, signed, threshold, gamma, _ = inputs
    ctx.save_for_backward(output[0], U, alpha, b_ui, *output[1:])
    ctx.settings = (gates, signed, threshold, gamma)


def _spikgru_scan_backward(ctx, grad_spikes, *_grad_saved):
    grads = spikgru_scan_backward_op(grad_spikes, *ctx.saved_tensors, *ctx.settings)
    return (*grads, None, None, None, None, None)


spikgru_scan_op.register_autograd(_spikgru_scan_backward, setup_context=_setup_spikgru_scan)


# ---------------------------------------------------------------------------------------------- dispatch


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
        backend: "auto", "torch", "cupy" or "cpu" (see `zoo.kernels.backend`).

    Returns:
        spikes, [T, B, H], dtype of `proj`.
    """
    check_spike_parameters(threshold, gamma)
    check_spikgru_inputs(proj, U, alpha, b_ui, gates)
    if resolve_backend(backend, proj, U, alpha, b_ui) == "torch":
        return spikgru_scan_reference(proj, U, alpha, b_ui, gates, signed, threshold, gamma)
    save = needs_saving(proj, U, alpha, b_ui)
    options = (int(gates), bool(signed), float(threshold), float(gamma), save)
    return spikgru_scan_op(proj, U, alpha, b_ui, *options)[0]
