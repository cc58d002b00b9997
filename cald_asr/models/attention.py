"""Multi-head self-attention with key-padding masks: the token mixer that conversion replaces.

Contract shared with the linear-time mixers in ``cald_asr.mixers``: ``forward(x, lengths)`` with
x (B, T, D) and lengths (B,) or None (all frames valid) returns (B, T, D), zero at padded positions.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, D = x.shape
        if D != self.d_model:
            raise ValueError(f"expected last dimension {self.d_model}, got {D}")
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        valid = None
        attn_mask = None
        # without padding (batch 1 at inference) no mask: SDPA's fused kernel then runs unmasked
        if lengths is not None and not bool((lengths == T).all()):
            valid = length_mask(lengths.to(x.device), T)
            # Only keys are masked: a padded query still sees the valid keys, so no row is all -inf (no NaN).
            attn_mask = valid[:, None, None, :]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        y = self.out_proj(y.transpose(1, 2).reshape(B, T, D))
        if valid is not None:
            # masked_fill, not a product: an utterance of length 0 has NaN rows that must not survive.
            y = y.masked_fill(~valid[..., None], 0.0)
        return y
