"""MultiHeadSelfAttention against torch.nn.MultiheadAttention, and the padding contract mixers share."""

import pytest
import torch

from cald_asr.models.attention import MultiHeadSelfAttention


def _reference(attn: MultiHeadSelfAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(attn.d_model, attn.n_heads, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        ref.out_proj.weight.copy_(attn.out_proj.weight)
        ref.out_proj.bias.copy_(attn.out_proj.bias)
    return ref.eval()


@pytest.fixture
def attn():
    torch.manual_seed(0)
    return MultiHeadSelfAttention(48, 6).eval()


def test_matches_torch_multihead_attention(attn):
    ref = _reference(attn)
    x = torch.randn(3, 17, 48)
    lengths = torch.tensor([17, 9, 1])
    with torch.no_grad():
        torch.testing.assert_close(attn(x, None), ref(x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-5)
        pad = torch.arange(17)[None] >= lengths[:, None]
        expected = ref(x, x, x, key_padding_mask=pad, need_weights=False)[0].masked_fill(pad[..., None], 0.0)
        torch.testing.assert_close(attn(x, lengths), expected, atol=1e-5, rtol=1e-5)


def test_padding_invariance_and_zero_padded_outputs(attn):
    x = torch.randn(2, 12, 48)
    lengths = torch.tensor([12, 5])
    with torch.no_grad():
        batch = attn(x, lengths)
        alone = attn(x[1:, :5], None)
    torch.testing.assert_close(batch[1, :5], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.all(batch[1, 5:] == 0)


def test_empty_utterance_gives_zeros_not_nan(attn):
    with torch.no_grad():
        y = attn(torch.randn(2, 4, 48), torch.tensor([4, 0]))
    assert torch.isfinite(y).all() and torch.all(y[1] == 0)


def test_gradients_do_not_reach_padded_inputs(attn):
    x = torch.randn(1, 8, 48, requires_grad=True)
    attn.train()
    attn(x, torch.tensor([5])).sum().backward()
    assert torch.all(x.grad[0, 5:] == 0) and torch.any(x.grad[0, :5] != 0)


def test_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(50, 6)
