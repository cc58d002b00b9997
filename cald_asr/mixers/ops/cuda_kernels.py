"""Optional mamba-ssm CUDA kernels. Nothing here imports mamba_ssm at module import time, so CPU
machines never load it; the functions below import it on first use only."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Optional

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def kernels_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None


def want_kernels(flag: Optional[bool], x: Tensor) -> bool:
    """Resolve a mixer's use_kernels flag for this input: None means 'when possible'."""
    if flag is None:
        return x.is_cuda and kernels_available()
    if flag and not (x.is_cuda and kernels_available()):
        raise RuntimeError(
            "use_kernels=True needs a CUDA tensor and the mamba_ssm package; "
            f"got device {x.device}, mamba_ssm importable: {kernels_available()}"
        )
    return flag


def ssd_kernel(x, dt_raw, A, B, C, chunk_size, D, dt_bias) -> Tensor:
    """mamba-ssm's fused SSD; dt_raw is before bias and softplus, as the kernel applies both."""
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    c = lambda t: t.contiguous()  # noqa: E731  (our fused layouts are strided views)
    return mamba_chunk_scan_combined(c(x), c(dt_raw), A, c(B), c(C), chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True)


def selective_scan_kernel(u, delta_raw, A, B, C, D, delta_bias) -> Tensor:
    """mamba-ssm's selective scan; takes our token-major (b,t,d) / (b,t,g,n) tensors."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    y = selective_scan_fn(
        u.transpose(1, 2).contiguous(),
        delta_raw.transpose(1, 2).contiguous(),
        A.contiguous(),
        B.permute(0, 2, 3, 1).contiguous(),
        C.permute(0, 2, 3, 1).contiguous(),
        D=D.float(),
        z=None,
        delta_bias=delta_bias.float(),
        delta_softplus=True,
    )
    return y.transpose(1, 2)
