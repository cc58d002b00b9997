"""Recurrent step inference of the causal mixers equals the parallel forward, frame by frame."""

import pytest
import torch

from cald_asr.mixers import Mamba, Mamba2

CONFS = [
    (Mamba2, dict(d_state=8, headdim=8, ngroups=2, chunk_size=16)),
    (Mamba, dict(d_state=4, block_size=8)),
]


@pytest.mark.parametrize("cls,conf", CONFS, ids=["mamba2", "mamba"])
def test_step_equals_forward(cls, conf):
    torch.manual_seed(0)
    m = cls(32, **conf).double()
    x = torch.randn(3, 37, 32, dtype=torch.float64)
    y = m(x)
    state = m.init_state(3)
    steps = []
    for t in range(x.shape[1]):
        y_t, state = m.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls,conf", CONFS, ids=["mamba2", "mamba"])
def test_state_carries_across_calls(cls, conf):
    # stepping the second half from the state after the first half equals the full forward
    torch.manual_seed(1)
    m = cls(32, **conf).double()
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    state = m.init_state(2)
    for t in range(10):
        _, state = m.step(x[:, t], state)
    tail = []
    for t in range(10, 20):
        y_t, state = m.step(x[:, t], state)
        tail.append(y_t)
    torch.testing.assert_close(torch.stack(tail, 1), m(x)[:, 10:], rtol=1e-10, atol=1e-10)
