"""The bidirectional wrapper: definition check per utterance, and the fused scan equals the plain
two-mixer composition with mixed lengths."""

import pytest
import torch

from cald_asr.mixers import Bidirectional, BiMamba, BiMamba2, Linformer, Mamba2


@pytest.mark.parametrize(
    "cls,conf",
    [(BiMamba2, dict(d_state=8, headdim=8, chunk_size=8)), (BiMamba, dict(d_state=4, block_size=8))],
    ids=["bimamba2", "bimamba"],
)
def test_definition_and_fusion(cls, conf):
    torch.manual_seed(0)
    m = cls(16, **conf).double()
    lengths = torch.tensor([30, 12, 29])
    x = torch.randn(3, 30, 16, dtype=torch.float64)
    fused = m(x, lengths)
    m.fused = False
    plain = m(x, lengths)
    torch.testing.assert_close(fused, plain, rtol=1e-10, atol=1e-10)
    for i, n in enumerate(lengths.tolist()):
        xi = x[i : i + 1, :n]
        want = m.fwd(xi) + m.bwd(xi.flip(1)).flip(1)
        torch.testing.assert_close(fused[i : i + 1, :n], want, rtol=1e-10, atol=1e-10)
    assert (fused[1, 12:] == 0).all()


def test_gradients_of_fused_equal_plain():
    torch.manual_seed(2)
    m = BiMamba2(16, d_state=8, headdim=8, chunk_size=8).double()
    x = torch.randn(2, 21, 16, dtype=torch.float64)
    lengths = torch.tensor([21, 9])
    grads = []
    for fused in (True, False):
        m.fused = fused
        grads.append(torch.autograd.grad(m(x, lengths).square().sum(), list(m.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_wraps_any_mixer_with_different_configs():
    # differing configs cannot fuse; the generic path must still follow the definition
    torch.manual_seed(3)
    m = Bidirectional(Mamba2(16, d_state=8, headdim=8), Mamba2(16, d_state=4, headdim=4)).double()
    assert m._fused_fn() is None
    x = torch.randn(1, 11, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), m.fwd(x) + m.bwd(x.flip(1)).flip(1))
    lin = Bidirectional(Linformer(16, 2, 20, 8), Linformer(16, 2, 20, 8))
    assert lin(torch.randn(2, 11, 16), torch.tensor([11, 4])).shape == (2, 11, 16)


@pytest.mark.parametrize(
    "cls,conf",
    [(BiMamba2, dict(d_state=8, headdim=8, chunk_size=8)), (BiMamba, dict(d_state=4, block_size=8))],
    ids=["bimamba2", "bimamba"],
)
def test_lengths_without_padding_take_the_unmasked_path(cls, conf):
    # a batch whose rows are all full length (batch 1 at inference) must give what lengths=None gives,
    # forward and gradients, while a padded row still keeps its padding at zero
    torch.manual_seed(3)
    m = cls(16, **conf).double()
    x = torch.randn(2, 19, 16, dtype=torch.float64, requires_grad=True)
    full = m(x, torch.tensor([19, 19]))
    none = m(x, None)
    torch.testing.assert_close(full, none, rtol=0, atol=0)
    g_full = torch.autograd.grad(full.square().sum(), x)[0]
    g_none = torch.autograd.grad(m(x, None).square().sum(), x)[0]
    torch.testing.assert_close(g_full, g_none, rtol=0, atol=0)
    padded = m(x, torch.tensor([19, 7]))
    assert (padded[1, 7:] == 0).all()
    torch.testing.assert_close(padded[0], none[0], rtol=1e-10, atol=1e-10)
