"""The hand-written blocked Mamba2 layer (mamba2_blocked) against the same mixers composed of
autograd-tracked ops (mamba2_directions_wide with the reference scan), in float64: outputs and the
gradients of the input and of every parameter, across block boundaries, chunk remainders, mixed
lengths, biases, several groups; plus torch.autograd.gradcheck of the autograd nodes themselves."""

import pytest
import torch

import cald_asr.mixers.ops.mamba2_blocked as layer_mod
from cald_asr.mixers import BiMamba2, Mamba2
from cald_asr.mixers.ops.directions import mamba2_directions, mamba2_directions_wide
from cald_asr.mixers.ops.mamba2_blocked import conf_of, mixer_params, run_layer
from cald_asr.mixers.ops.masking import reverse_time

F64 = dict(dtype=torch.float64)


def mods_of(m):
    return ([m.fwd, m.bwd], [False, True]) if isinstance(m, BiMamba2) else ([m], [False])


def randomize(m):
    # non-trivial values everywhere, so that a wrong gradient of any parameter shows
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)


CONFS = {
    "bi_default_layout": (BiMamba2, dict(d_state=6, headdim=4, chunk_size=8)),
    "bi_groups_biases": (
        BiMamba2,
        dict(d_state=5, headdim=4, ngroups=2, chunk_size=8, bias=True, conv_bias=False, expand=2),
    ),
    "causal": (Mamba2, dict(d_state=6, headdim=4, chunk_size=8, d_conv=3)),
    "bi_chunk1_conv1": (BiMamba2, dict(d_state=3, headdim=4, chunk_size=1, d_conv=1)),
}


@pytest.mark.parametrize("name", sorted(CONFS))
@pytest.mark.parametrize("block", [8, 16, 64])
def test_blocked_layer_equals_autograd_composition(name, block, monkeypatch):
    # block 8 = one chunk per block: the state and the conv history cross every block boundary;
    # conv tiles of 5 rows (30 // 6 sequences; 10 for the causal mixer) cross tile boundaries
    monkeypatch.setattr(layer_mod, "DEFAULT_BLOCK", block)
    monkeypatch.setattr(layer_mod, "CONV_ROWS", 30)
    cls, conf = CONFS[name]
    torch.manual_seed(sorted(CONFS).index(name) * 10 + block)
    m = cls(16, **conf).double()
    randomize(m)
    mods, reverse = mods_of(m)
    lengths = torch.tensor([45, 17, 1])
    x = torch.randn(3, 45, 16, **F64, requires_grad=True)
    params = [x] + list(m.parameters())
    ours = mamba2_directions(mods, reverse, x, lengths)
    ref = mamba2_directions_wide(mods, reverse, x, lengths, use_kernels=False)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(ref)
    ga = torch.autograd.grad((ours * g).sum(), params)
    gb = torch.autograd.grad((ref * g).sum(), params)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for n, a, b in zip(names, ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=n)


def test_no_grad_forward_equals_recorded_forward():
    torch.manual_seed(5)
    m = BiMamba2(16, d_state=6, headdim=4, chunk_size=8)
    x = torch.randn(2, 30, 16)
    with torch.no_grad():
        a = m(x, torch.tensor([30, 11]))
    b = m(x.requires_grad_(), torch.tensor([30, 11]))
    assert b.requires_grad
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_inference_mode_equals_no_grad_with_two_threads():
    torch.manual_seed(9)
    m = BiMamba2(16, d_state=6, headdim=4, chunk_size=8)
    x = torch.randn(2, 30, 16)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            want = m(x, torch.tensor([30, 9]))
        with torch.inference_mode():
            got = m(x, torch.tensor([30, 9]))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_gradcheck_layer_node(monkeypatch):
    # blocks of 4 frames, conv tiles of 3 rows (6 // two sequences): both cross boundaries
    monkeypatch.setattr(layer_mod, "DEFAULT_BLOCK", 4)
    monkeypatch.setattr(layer_mod, "CONV_ROWS", 6)
    torch.manual_seed(6)
    m = BiMamba2(4, d_state=3, headdim=2, chunk_size=4, bias=True).double()
    randomize(m)
    cf = conf_of(m.fwd)
    X = torch.randn(2, 1, 11, 4, **F64, requires_grad=True)
    params = [p for mod in (m.fwd, m.bwd) for p in mixer_params(mod)]
    assert cf.block == 4 and None not in params
    assert torch.autograd.gradcheck(lambda X, *ps: run_layer(X, cf, ps), (X, *params), fast_mode=True)


def test_reverse_within_lengths_and_its_gradient():
    x = torch.arange(12.0, dtype=torch.float64).view(2, 3, 2).requires_grad_()
    lengths = torch.tensor([3, 2])
    y = reverse_time(x, lengths)
    assert y[0].tolist() == x[0].flip(0).tolist()
    assert y[1].tolist() == [x[1, 1].tolist(), x[1, 0].tolist(), x[1, 2].tolist()]
    assert torch.autograd.gradcheck(lambda v: reverse_time(v, lengths), (x,))


def test_thread_count_does_not_change_results():
    torch.manual_seed(8)
    m = BiMamba2(16, d_state=6, headdim=4, chunk_size=8).double()
    randomize(m)
    x = torch.randn(2, 37, 16, **F64, requires_grad=True)
    lengths = torch.tensor([37, 20])
    outs = []
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            y = m(x, lengths)
            outs.append((y, torch.autograd.grad(y.square().sum(), [x] + list(m.parameters()))))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    (ya, ga), (yb, gb) = outs
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONFS))
@pytest.mark.parametrize("threads", [1, 2])
def test_full_rows_path_equals_autograd_composition(name, threads, monkeypatch):
    """Rows without padding (given as None or as full lengths) take their own path (run_directions):
    each mixer reads its blocks straight from x, reversed one block at a time, and writes its output
    and, in backward, its input gradient in x's time order. Across block boundaries and a chunk
    remainder (45 frames: blocks of 16, chunks of 8 or 1; conv tiles of 3 rows), with one or two
    threads: the output under inference_mode, and the output and every gradient of the autograd
    node (_FullRows), equal the reference."""
    monkeypatch.setattr(layer_mod, "DEFAULT_BLOCK", 16)
    monkeypatch.setattr(layer_mod, "CONV_ROWS", 12)
    cls, conf = CONFS[name]
    torch.manual_seed(sorted(CONFS).index(name) + 1000 * threads)
    m = cls(16, **conf).double()
    randomize(m)
    mods, reverse = mods_of(m)
    x = torch.randn(2, 45, 16, **F64, requires_grad=True)
    params = [x] + list(m.parameters())
    ref = mamba2_directions_wide(mods, reverse, x, None, use_kernels=False)
    g = torch.randn_like(ref)
    gb = torch.autograd.grad((ref * g).sum(), params)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            inferred = mamba2_directions(mods, reverse, x.detach(), torch.tensor([45, 45]))
        ours = mamba2_directions(mods, reverse, x, None)
        assert type(ours.grad_fn).__name__ == "_FullRowsBackward"
        ga = torch.autograd.grad((ours * g).sum(), params)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(inferred, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for n, a, b in zip(names, ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=n)
