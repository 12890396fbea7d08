"""Multi-head attention blocks: plain (absolute positions) and relative-position self-attention.

Both run through `torch.nn.functional.scaled_dot_product_attention` (SDPA), so the softmax and the weighted sum
never materialise more than the fused kernel needs. Tensors are batch first: [B, T, d].

Relative-position self-attention (Transformer-XL; ESPnet's "latest" `RelPositionMultiHeadedAttention`, as RAVEn
uses it). For query i and key j of head h, with d_k = d / heads::

    score(i, j) = [ (q_i + u) . k_j  +  (q_i + v) . p_{i-j} ] / sqrt(d_k)                        (1)

- q, k: the linear projections of the input; u = ``pos_bias_u``, v = ``pos_bias_v`` [heads, d_k];
- p_r = W_pos e(r) (no bias), e(r) the sinusoid of relative position r = i - j (`relative_sinusoids`).

The first term is SDPA's own product with q + u as the query. The second term depends on (i, j) only through
i - j, so it is passed to SDPA as an additive bias: the product (q + v) . p_n is computed once for the 2T - 1
relative positions ([B, heads, T, 2T-1], the least the term needs) and row i is read at columns
T-1-i .. 2T-2-i through a strided view (no copy, no pad-and-reshape). Padded keys get -inf in the same bias.

``implementation="reference"`` runs the original structure eagerly instead: both score matrices materialised,
the relative shift by zero-pad + reshape + slice, masked softmax, weights of padded keys zeroed, then the
weighted sum. It is the oracle of the SDPA path and the baseline of the benchmark.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AttentionImplementation",
    "MultiHeadAttention",
    "RelativePositionSelfAttention",
    "absolute_sinusoids",
    "relative_shift",
    "relative_sinusoids",
]

AttentionImplementation = Literal["sdpa", "reference"]


def _frequencies(dim: int, device: torch.device | None) -> torch.Tensor:
    """omega_k = 10000^(-2k/d) for k = 0 .. d/2 - 1, float32 [d/2]."""
    return torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim))


def _sinusoids(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """e(r)[2k] = sin(r omega_k), e(r)[2k+1] = cos(r omega_k): positions [N] -> [N, d] float32."""
    angles = positions.to(torch.float32)[:, None] * _frequencies(dim, positions.device)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)


def relative_sinusoids(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoids of the relative positions r = T-1, T-2, ..., -(T-1) (row n <-> r = T-1-n): [2T-1, d] float32."""
    return _sinusoids(torch.arange(length - 1, -length, -1, device=device), dim)


def absolute_sinusoids(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoids of the absolute positions 0 .. L-1 (Vaswani et al. 2017, section 3.5): [L, d] float32."""
    return _sinusoids(torch.arange(length, device=device), dim)


def relative_shift(scores: torch.Tensor) -> torch.Tensor:
    """Read the relative-position scores [..., T, 2T-1] (column n <-> r = T-1-n) at r = i - j: [..., T, T].

    Entry (i, j) is column T-1-i+j of row i. The result is a strided view of `scores` (made contiguous first if
    it is not), so nothing is copied.
    """
    scores = scores.contiguous()
    length = scores.shape[-2]
    if scores.shape[-1] != 2 * length - 1:
        raise ValueError(f"relative_shift expects [..., T, 2T-1] scores, got shape {tuple(scores.shape)}")
    stride = scores.stride()
    return scores.as_strided(
        (*scores.shape[:-1], length),
        (*stride[:-2], stride[-2] - 1, 1),
        scores.storage_offset() + length - 1,
    )


def _reference_relative_shift(scores: torch.Tensor) -> torch.Tensor:
    """The Transformer-XL shift as the original computes it: zero column in front, reshape, drop a row, slice."""
    *lead, length, width = scores.shape
    padded = torch.cat((scores.new_zeros(*lead, length, 1), scores), dim=-1)
    shifted = padded.view(*lead, width + 1, length)[..., 1:, :].reshape(*lead, length, width)
    return shifted[..., :length]


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, eq. 1 and section 3.2.2): query [B, L, d], memory [B, S, d] ->
    [B, L, d].

    Args:
        dim: d, the model width; heads: number of heads h (d_k = d / h).
        dropout: dropout on the attention weights (training only).
        implementation: ``"sdpa"`` (fused) or ``"reference"`` (scores, masked softmax and sum written out).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, implementation: AttentionImplementation = "sdpa"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        if implementation not in ("sdpa", "reference"):
            raise ValueError(f"attention implementation must be 'sdpa' or 'reference', got {implementation!r}")
        self.heads, self.head_dim, self.dropout, self.implementation = heads, dim // heads, dropout, implementation
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, d] -> [B, h, L, d_k]."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of `memory` [B, S, d]: two [B, h, S, d_k] (computed once and reused when decoding)."""
        return self.split_heads(self.linear_k(memory)), self.split_heads(self.linear_v(memory))

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projected query [B, L, d] against projected keys/values [B, h, S, d_k] -> [B, L, d].

        `mask`: bool, broadcastable to [B, h, L, S], True where attention is allowed (e.g. [B, 1, 1, S] valid keys
        or [1, 1, L, S] causal); every query row must allow at least one key.
        """
        q = self.split_heads(query)
        dropout = self.dropout if self.training else 0.0
        if self.implementation == "sdpa":
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=dropout)
        else:
            scores = q @ keys.transpose(-1, -2) / math.sqrt(self.head_dim)
            out = _reference_softmax_sum(scores, values, mask, dropout, self.training)
        return self.linear_out(out.transpose(1, 2).flatten(2))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        keys, values = self.project_memory(memory)
        return self.attend(self.linear_q(query), keys, values, mask)


def _reference_softmax_sum(
    scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, dropout: float, training: bool
) -> torch.Tensor:
    """Masked softmax as the original writes it (lowest float before, weights zeroed after), dropout, sum."""
    if mask is not None:
        blocked = ~mask
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    return F.dropout(weights, dropout, training) @ values


class RelativePositionSelfAttention(MultiHeadAttention):
    """Relative-position multi-head self-attention, eq. (1) of the module docstring: x [B, T, d] -> [B, T, d].

    Extra parameters: ``linear_pos`` (W_pos, no bias), ``pos_bias_u`` and ``pos_bias_v`` [h, d_k] (Xavier-uniform
    initialised, as Transformer-XL).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, implementation: AttentionImplementation = "sdpa"):
        super().__init__(dim, heads, dropout, implementation)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.head_dim))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, d]; pos_emb [2T-1, d] (`relative_sinusoids`, possibly dropped out); key_valid bool [B, T]
        (True = real frame; None = all valid). Padded queries are computed too."""
        q = self.split_heads(self.linear_q(x))
        k = self.split_heads(self.linear_k(x))
        v = self.split_heads(self.linear_v(x))
        p = self.linear_pos(pos_emb).unflatten(-1, (self.heads, self.head_dim)).transpose(0, 1)  # [h, 2T-1, d_k]
        scale = 1.0 / math.sqrt(self.head_dim)
        query_u = q + self.pos_bias_u[:, None, :]
        query_v = q + self.pos_bias_v[:, None, :]
        dropout = self.dropout if self.training else 0.0
        key_mask = None if key_valid is None else key_valid[:, None, None, :]
        if self.implementation == "sdpa":
            bias = relative_shift((query_v * scale) @ p.transpose(-1, -2))
            if key_mask is not None:
                bias = bias.masked_fill(~key_mask, float("-inf"))
            out = F.scaled_dot_product_attention(query_u, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
        else:
            content = query_u @ k.transpose(-1, -2)
            position = _reference_relative_shift(query_v @ p.transpose(-1, -2))
            out = _reference_softmax_sum((content + position) * scale, v, key_mask, dropout, self.training)
        return self.linear_out(out.transpose(1, 2).flatten(2))
