"""Chunked scans against the naive per-step recurrences in float64: forward, final state and the
gradients of every input, for lengths that fill chunks exactly, leave a remainder, or are shorter;
and torch.autograd.gradcheck of the SSD scan's autograd node."""

import pytest
import torch

import cald_asr.mixers.ops.selective_scan as selective_scan_mod
from cald_asr.mixers.ops.selective_scan import selective_scan
from cald_asr.mixers.ops.ssd import ssd_scan

from reference import selective_recurrence, ssd_recurrence

F64 = dict(dtype=torch.float64)
CASES = [(1, 16), (2, 16), (63, 16), (64, 16), (65, 16), (64, 64), (65, 64), (517, 64), (517, 100)]


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


def check(fast, slow, inputs):
    y, s = fast(*inputs)
    yr, sr = slow(*inputs)
    assert rel(y, yr) < 1e-8 and rel(s, sr) < 1e-8
    gy, gs = torch.randn_like(y), torch.randn_like(s)
    g = torch.autograd.grad((y * gy).sum() + (s * gs).sum(), inputs)
    gr = torch.autograd.grad((yr * gy).sum() + (sr * gs).sum(), inputs)
    for name, a, b in zip("x dt A B C D state0".split(), g, gr):
        assert rel(a, b) < 1e-8, name


def ssd_inputs(b, t, h, g, p, n):
    """ssd_scan's inputs x, dt > 0, A < 0, B, C, D and the initial state, random, requiring grad."""
    inputs = [
        torch.randn(b, t, h, p, **F64),
        torch.rand(b, t, h, **F64) * 0.5 + 0.01,
        -torch.rand(h, **F64) * 2,
        torch.randn(b, t, g, n, **F64),
        torch.randn(b, t, g, n, **F64),
        torch.randn(h, **F64),
        torch.randn(b, h, p, n, **F64),
    ]
    return [i.requires_grad_() for i in inputs]


@pytest.mark.parametrize("t,chunk", CASES)
def test_ssd_matches_recurrence(t, chunk):
    torch.manual_seed(t * 1000 + chunk)
    inputs = ssd_inputs(2, t, 4, 2, 3, 5)
    fast = lambda x, dt, A, B, C, D, s0: ssd_scan(x, dt, A, B, C, chunk, D, s0, return_final_state=True)  # noqa
    check(fast, ssd_recurrence, inputs)


@pytest.mark.parametrize("keep_states", [True, False], ids=["kept", "recomputed"])
@pytest.mark.parametrize("t,block", CASES)
def test_selective_scan_matches_recurrence(t, block, keep_states, monkeypatch):
    # backward either reads the states kept by forward or recomputes them block by block
    monkeypatch.setattr(selective_scan_mod, "SAVE_STATES_MAX", 1 << 40 if keep_states else 0)
    torch.manual_seed(t * 1000 + block)
    b, d, g, n = 2, 6, 2, 4
    inputs = [
        torch.randn(b, t, d, **F64),
        torch.rand(b, t, d, **F64) * 0.5 + 0.01,
        -torch.rand(d, n, **F64) * 2,
        torch.randn(b, t, g, n, **F64),
        torch.randn(b, t, g, n, **F64),
        torch.randn(d, **F64),
        torch.randn(b, d, n, **F64),
    ]
    inputs = [i.requires_grad_() for i in inputs]
    fast = lambda u, dl, A, B, C, D, s0: selective_scan(u, dl, A, B, C, D, s0, True, block)  # noqa
    check(fast, selective_recurrence, inputs)


def test_selective_scan_stable_with_huge_decay():
    # delta*A of -200 per step underflows exp() in any cumulative-sum formulation; the prefix
    # scan only multiplies decays, so the state is simply the latest input
    torch.manual_seed(0)
    u, B, C = torch.randn(1, 40, 3), torch.randn(1, 40, 1, 2), torch.randn(1, 40, 1, 2)
    delta = torch.full((1, 40, 3), 20.0)
    A = torch.full((3, 2), -10.0)
    y = selective_scan(u, delta, A, B, C, block_size=16)
    yr, _ = selective_recurrence(u, delta, A, B, C)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-5)


def test_ssd_rejects_bad_groups():
    with pytest.raises(ValueError, match="multiple of groups"):
        ssd_scan(
            torch.zeros(1, 4, 3, 2),
            torch.ones(1, 4, 3),
            -torch.ones(3),
            torch.zeros(1, 4, 2, 2),
            torch.zeros(1, 4, 2, 2),
        )


def test_gradcheck_scan_node():
    torch.manual_seed(7)
    inputs = ssd_inputs(2, 11, 4, 2, 2, 3)

    def f(x, dt, A, B, C, D, s0):
        return ssd_scan(x, dt, A, B, C, 4, D, s0, return_final_state=True)

    assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
