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


# the same shapes for every test: Mamba2-style heads with a 64-step chunk, Mamba (v1) with a 16-wide state
MIXERS = pytest.mark.parametrize(
    "cls,conf",
    [
        (Mamba2, dict(d_state=64, headdim=32, chunk_size=64)),
        (BiMamba2, dict(d_state=64, headdim=32, chunk_size=64)),
        (Mamba, dict(d_state=16)),
        (BiMamba, dict(d_state=16)),
    ],
    ids=["mamba2", "bimamba2", "mamba", "bimamba"],
)


def twins(cls, conf):
    """(our scans, the same weights on mamba-ssm's kernels), on CUDA."""
    torch.manual_seed(0)
    ours = cls(128, **conf).cuda()
    kern = copy.deepcopy(ours)
    for m in (ours, kern):
        for sub in m.modules():
            if isinstance(sub, (Mamba, Mamba2)):
                sub.use_kernels = m is kern
    return ours, kern


@MIXERS
def test_kernel_matches_pure_pytorch(cls, conf):
    ours, kern = twins(cls, conf)
    x = torch.randn(2, 300, 128, device="cuda")
    lengths = torch.tensor([300, 171], device="cuda")
    ya, yb = ours(x, lengths), kern(x, lengths)
    torch.testing.assert_close(yb, ya, rtol=2e-3, atol=2e-3)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad((ya * g).sum(), list(ours.parameters()))
    gb = torch.autograd.grad((yb * g).sum(), list(kern.parameters()))
    for (name, _), a, b in zip(ours.named_parameters(), ga, gb):
        torch.testing.assert_close(b, a, rtol=5e-3, atol=5e-3, msg=name)


def _v1_kernel_available() -> bool:
    """Mamba (v1) runs mamba-ssm's compiled selective scan; a build without its CUDA extension has none."""
    try:
        import selective_scan_cuda  # noqa: F401
    except ImportError:
        return False
    return True


@MIXERS
def test_kernel_trains_like_pure_pytorch_under_bf16(cls, conf):
    """Training as the trainer runs it with amp: bf16: forward under autocast, a float32 loss, AdamW steps.
    bf16 keeps 8 bits of mantissa, so the two paths agree to about 1e-2 relative, not to float32 rounding:
    the gradients' cosine stays above 0.99 and three AdamW steps leave the weights within 2 lr of each other
    (Adam moves a weight by about lr per step whatever its gradient's scale)."""
    if cls in (Mamba, BiMamba) and not _v1_kernel_available():
        pytest.skip("mamba-ssm was built without its compiled selective scan (the Mamba v1 kernel)")
    ours, kern = twins(cls, conf)
    lr = 1e-3
    opts = [torch.optim.AdamW(m.parameters(), lr=lr) for m in (ours, kern)]
    x = torch.randn(2, 300, 128, device="cuda")
    lengths = torch.tensor([300, 171], device="cuda")
    target = torch.randn(2, 300, 128, device="cuda")
    for step in range(3):
        grads = []
        for m, opt in zip((ours, kern), opts):
            opt.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = m(x, lengths)
            loss = ((y.float() - target) ** 2).mean()
            loss.backward()
            grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
            opt.step()
        cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
        assert cos > 0.99, f"step {step}: gradient cosine {cos:.4f}"
    for (name, a), b in zip(ours.named_parameters(), kern.parameters()):
        assert float((a - b).abs().max()) <= 2 * lr, name
