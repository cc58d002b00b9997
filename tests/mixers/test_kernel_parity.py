"""Our scans against mamba-ssm's CUDA kernels with the same weights, forward and backward.
Needs a CUDA device and the mamba_ssm package; skipped elsewhere."""

import copy
import importlib.util

import pytest
import torch

from cald_asr.mixers import BiMamba, BiMamba2, Mamba, Mamba2

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm")),
    reason="mamba-ssm parity needs a CUDA device and the mamba_ssm package",
)


@pytest.mark.parametrize(
    "cls,conf",
    [
        (Mamba2, dict(d_state=64, headdim=32, chunk_size=64)),
        (BiMamba2, dict(d_state=64, headdim=32, chunk_size=64)),
        (Mamba, dict(d_state=16)),
        (BiMamba, dict(d_state=16)),
    ],
    ids=["mamba2", "bimamba2", "mamba", "bimamba"],
)
def test_kernel_matches_pure_pytorch(cls, conf):
    torch.manual_seed(0)
    ours = cls(128, **conf).cuda()
    kern = copy.deepcopy(ours)
    for m in (ours, kern):
        for sub in m.modules():
            if isinstance(sub, (Mamba, Mamba2)):
                sub.use_kernels = m is kern
    x = torch.randn(2, 300, 128, device="cuda")
    lengths = torch.tensor([300, 171], device="cuda")
    ya, yb = ours(x, lengths), kern(x, lengths)
    torch.testing.assert_close(yb, ya, rtol=2e-3, atol=2e-3)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad((ya * g).sum(), list(ours.parameters()))
    gb = torch.autograd.grad((yb * g).sum(), list(kern.parameters()))
    for (name, _), a, b in zip(ours.named_parameters(), ga, gb):
        torch.testing.assert_close(b, a, rtol=5e-3, atol=5e-3, msg=name)
