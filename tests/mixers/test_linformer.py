"""Linformer: reproduces softmax attention when E, F are identity-like and k >= n; matches the
paper's formula per utterance with random E, F and mixed lengths; sharing modes; length limit."""

import math

import pytest
import torch

from cald_asr.mixers import Linformer, LinformerProjection

D, HEADS = 32, 4


def from_mha(mha, n, k, **kw):
    q, kk, v = mha.in_proj_weight.chunk(3)
    qb, kb, vb = mha.in_proj_bias.chunk(3)
    return Linformer.from_attention_weights(
        q, qb, kk, kb, v, vb, mha.out_proj.weight, mha.out_proj.bias, HEADS, max_len=n, k=k, **kw
    )


@pytest.mark.parametrize("copies", [1, 2])
def test_identity_projection_reproduces_attention(copies):
    # E[:n] = sqrt(n) [I I ...]: after the 1/sqrt(n) scale every key/value appears `copies` times,
    # and duplicating every softmax entry the same number of times leaves attention unchanged
    torch.manual_seed(0)
    n = 12
    mha = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).double().eval()
    lin = from_mha(mha, n, copies * n, sharing="key_value").double()
    with torch.no_grad():
        lin.E.weight.copy_(math.sqrt(n) * torch.eye(n, dtype=torch.float64).repeat(1, copies))
    x = torch.randn(3, n, D, dtype=torch.float64)
    want, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(lin(x), want, rtol=1e-10, atol=1e-10)


def test_matches_formula_per_utterance_with_padding():
    torch.manual_seed(1)
    m = Linformer(D, HEADS, max_len=40, k=8).double()
    lengths = torch.tensor([40, 25, 3])
    x = torch.randn(3, 40, D, dtype=torch.float64)
    y = m(x, lengths)
    dh = D // HEADS
    for i, n in enumerate(lengths.tolist()):
        xi = x[i, :n]
        split = lambda t: t.view(n, HEADS, dh).transpose(0, 1)  # noqa: E731
        q, k, v = split(m.q_proj(xi)), split(m.k_proj(xi)), split(m.v_proj(xi))
        kp = m.E.weight[:n].T @ k / math.sqrt(n)
        vp = m.F.weight[:n].T @ v / math.sqrt(n)
        att = torch.softmax(q @ kp.transpose(-1, -2) / math.sqrt(dh), dim=-1) @ vp
        want = m.out_proj(att.transpose(0, 1).reshape(n, D))
        torch.testing.assert_close(y[i, :n], want, rtol=1e-10, atol=1e-10)
        assert (y[i, n:] == 0).all()


def test_sharing_modes():
    none = Linformer(D, HEADS, 50, 8, sharing="none")
    kv = Linformer(D, HEADS, 50, 8, sharing="key_value")
    assert none.E is not none.F and kv.E is kv.F
    shared = LinformerProjection(50, 8)
    layers = torch.nn.ModuleList([Linformer(D, HEADS, 50, 8, "layerwise", shared) for _ in range(3)])
    assert all(lin.E is shared and lin.F is shared for lin in layers)
    n_params = sum(p.numel() for p in layers.parameters())  # shared E counted once
    assert n_params == 3 * 4 * (D * D + D) + 50 * 8
    x = torch.randn(2, 30, D)
    sum(lin(x).sum() for lin in layers).backward()
    assert shared.weight.grad[:30].abs().sum() > 0 and (shared.weight.grad[30:] == 0).all()
    with pytest.raises(ValueError, match="shared_proj"):
        Linformer(D, HEADS, 50, 8, sharing="layerwise")
    with pytest.raises(ValueError, match="sharing"):
        Linformer(D, HEADS, 50, 8, sharing="heads")


def test_length_limit_and_missing_bias():
    torch.manual_seed(2)
    w = [torch.randn(D, D) for _ in range(4)]
    m = Linformer.from_attention_weights(w[0], None, w[1], None, w[2], None, w[3], None, HEADS, 20, 8)
    assert all((lin.bias == 0).all() for lin in (m.q_proj, m.k_proj, m.v_proj, m.out_proj))
    assert torch.equal(m.k_proj.weight, w[1])
    m(torch.randn(1, 20, D))
    with pytest.raises(ValueError, match="exceeds Linformer max_len 20"):
        m(torch.randn(1, 21, D))
