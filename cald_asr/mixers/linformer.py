"""Linformer self-attention (Wang et al. 2020): keys and values are projected along the sequence
axis, E^T K and F^T V with E, F of shape (max_len, k), so attention costs O(n k) instead of O(n^2).
For variable lengths E, F are sliced to the true length n and scaled by 1/sqrt(n) (CALD, section 1);
padded frames are zeroed before the projection so they contribute nothing."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .ops.masking import check_lengths, valid_mask

SHARING = ("none", "key_value", "layerwise")


class LinformerProjection(nn.Module):
    """One sequence-axis projection E (max_len, k). Entries ~ N(0, 1): with the 1/sqrt(n) scale a
    projected key then has the magnitude of a single key, whatever n is."""

    def __init__(self, max_len: int, k: int):
        super().__init__()
        self.max_len, self.k = max_len, k
        self.weight = nn.Parameter(torch.randn(max_len, k))

    def for_lengths(self, T: int, lengths: Optional[Tensor], dtype) -> Tensor:
        """(b or 1, T, k): rows beyond each length zeroed, scaled by 1/sqrt(length)."""
        E = self.weight[:T].to(dtype)
        if lengths is None:
            return (E / math.sqrt(max(T, 1))).unsqueeze(0)
        mask = valid_mask(lengths, T, E.device).to(dtype)
        scale = lengths.to(E.device, dtype).clamp(min=1).rsqrt()
        return E.unsqueeze(0) * (mask * scale.unsqueeze(1)).unsqueeze(-1)


class Linformer(nn.Module):
    """forward(x (B,T,D), lengths) -> (B,T,D), zero on padding; T must not exceed max_len.

    Arguments:
      d_model      input and output width D, a multiple of num_heads
      num_heads    attention heads
      max_len      the longest sequence: E and F have max_len rows
      k            the projected length (columns of E and F)
      sharing      "none" (own E and F), "key_value" (E = F within the layer), "layerwise" (the
                   LinformerProjection passed as shared_proj serves as E = F; pass the same one to
                   every layer)
      shared_proj  that projection, for sharing="layerwise" only
      bias         biases on the query, key, value and output projections
      dropout      attention dropout while training
      scaling      the factor on the scores; default head_dim ** -0.5
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        max_len: int,
        k: int = 256,
        sharing: str = "none",
        shared_proj: Optional[LinformerProjection] = None,
        bias: bool = True,
        dropout: float = 0.0,
        scaling: Optional[float] = None,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of num_heads ({num_heads})")
        if sharing not in SHARING:
            raise ValueError(f"sharing must be one of {SHARING}, got {sharing!r}")
        if (sharing == "layerwise") != (shared_proj is not None):
            raise ValueError("shared_proj is required for sharing='layerwise' and only for it")
        self.d_model, self.num_heads, self.max_len, self.k = d_model, num_heads, max_len, k
        self.sharing, self.dropout = sharing, dropout
        self.scaling = scaling if scaling is not None else (d_model // num_heads) ** -0.5
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        if sharing == "layerwise":
            if (shared_proj.max_len, shared_proj.k) != (max_len, k):
                raise ValueError(
                    f"shared_proj is ({shared_proj.max_len}, {shared_proj.k}), layer wants ({max_len}, {k})"
                )
            self.E = shared_proj
        else:
            self.E = LinformerProjection(max_len, k)
        self.F = self.E if sharing != "none" else LinformerProjection(max_len, k)

    @classmethod
    def from_attention_weights(
        cls,
        q_w,
        q_b,
        k_w,
        k_b,
        v_w,
        v_b,
        o_w,
        o_b,
        num_heads: int,
        max_len: int,
        k: int,
        sharing: str = "none",
        shared_proj: Optional[LinformerProjection] = None,
        **kw,
    ) -> "Linformer":
        """Build from a teacher attention's projections (nn.Linear layout: weight (out, in)); a bias
        given as None is zero, as in attentions whose key projection has none."""
        m = cls(q_w.shape[1], num_heads, max_len, k, sharing, shared_proj, bias=True, **kw)
        with torch.no_grad():
            for lin, w, b in ((m.q_proj, q_w, q_b), (m.k_proj, k_w, k_b), (m.v_proj, v_w, v_b), (m.out_proj, o_w, o_b)):
                if tuple(w.shape) != tuple(lin.weight.shape):
                    raise ValueError(f"weight shape {tuple(w.shape)} != expected {tuple(lin.weight.shape)}")
                lin.weight.copy_(w)
                lin.bias.copy_(b) if b is not None else lin.bias.zero_()
        return m

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        b, T, D = x.shape
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds Linformer max_len {self.max_len}")
        lengths = check_lengths(lengths, b, T)
        mask = valid_mask(lengths, T, x.device)
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)  # inf/nan in padding must not reach 0 * x
        h, dh = self.num_heads, D // self.num_heads
        heads = lambda t: t.view(b, T, h, dh).transpose(1, 2)  # noqa: E731
        q, key, val = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        E = self.E.for_lengths(T, lengths, x.dtype)  # (b|1, T, k)
        Fp = E if self.F is self.E else self.F.for_lengths(T, lengths, x.dtype)
        # E, F rows are zero beyond each length, so padded keys/values contribute nothing
        kp = E.unsqueeze(1).transpose(-1, -2) @ key  # (b,h,k,dh)
        vp = Fp.unsqueeze(1).transpose(-1, -2) @ val
        y = F.scaled_dot_product_attention(
            q, kp, vp, dropout_p=self.dropout if self.training else 0.0, scale=self.scaling
        )
        y = self.out_proj(y.transpose(1, 2).reshape(b, T, D))
        return y if mask is None else y.masked_fill(~mask.unsqueeze(-1), 0.0)
