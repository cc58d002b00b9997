"""Mamba2's gated RMS norm: the parameter holder the block keeps (named as mamba-ssm names it, so
weights interchange) and the function every Mamba2 path applies."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) * weight, normalised within groups of `group_size` channels."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size = group_size
        self.eps = eps


def gated_rms(y: Tensor, z: Tensor, weight: Tensor, group_size: int, eps: float) -> Tensor:
    """y, z (..., d) -> RMSNorm(y * silu(z)) * weight over groups of group_size channels; weight (d,),
    or (K, d) for K mixers side by side in y's last two axes."""
    y = y * F.silu(z)
    shape = y.shape
    y = y.reshape(*shape[:-1], shape[-1] // group_size, group_size)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)
    return y.reshape(shape) * weight
