"""Every registered mixer: an utterance alone equals the same utterance inside a padded batch with
longer ones (float32, 1e-5); padded outputs are exactly zero; padding content is never read."""

import pytest
import torch

from cald_asr.mixers import MIXERS, build_mixer

D = 32
SMALL = {
    "mamba2": dict(d_state=8, headdim=8, chunk_size=16),
    "bimamba2": dict(d_state=8, headdim=8, chunk_size=16),
    "mamba": dict(d_state=4, block_size=8),
    "bimamba": dict(d_state=4, block_size=8),
    "linformer": dict(num_heads=4, max_len=80, k=24),
}


def test_every_mixer_is_covered():
    assert set(SMALL) == set(MIXERS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_padding_invariance(name):
    torch.manual_seed(0)
    m = build_mixer(name, D, **SMALL[name]).eval()
    lengths = torch.tensor([70, 37, 1, 16])
    x = torch.randn(4, 70, D)
    valid = torch.arange(70) < lengths[:, None]
    x = torch.where(valid[..., None], x, torch.full_like(x, 1e4))  # loud padding must be ignored
    y = m(x, lengths)
    assert (y[~valid] == 0).all()
    for i, n in enumerate(lengths.tolist()):
        alone = m(x[i : i + 1, :n])
        torch.testing.assert_close(y[i, :n], alone[0], rtol=1e-5, atol=1e-5)
    x_nan = torch.where(valid[..., None], x, torch.full_like(x, float("nan")))
    torch.testing.assert_close(m(x_nan, lengths), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_no_gradient_reaches_padding(name):
    torch.manual_seed(1)
    m = build_mixer(name, D, **SMALL[name])
    x = torch.randn(2, 40, D, requires_grad=True)
    m(x, torch.tensor([40, 23])).square().sum().backward()
    assert (x.grad[1, 23:] == 0).all() and x.grad[1, :23].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bad_lengths_are_rejected(name):
    m = build_mixer(name, D, **SMALL[name])
    with pytest.raises(ValueError, match="lengths"):
        m(torch.randn(2, 10, D), torch.tensor([11, 3]))
