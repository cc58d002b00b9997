"""The token-major causal depthwise conv equals nn.Conv1d(groups=C) with left padding, forward and
gradients (the Mamba blocks keep nn.Conv1d's parameter layout)."""

import torch

from cald_asr.mixers.ops.conv import causal_depthwise_conv


def test_matches_conv1d():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64, requires_grad=True)
    ours = causal_depthwise_conv(x, conv.weight, conv.bias)
    ref = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    ga = torch.autograd.grad((ours * g).sum(), [x, conv.weight, conv.bias])
    gb = torch.autograd.grad((ref * g).sum(), [x, conv.weight, conv.bias])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert causal_depthwise_conv(x[:, :1], conv.weight, None).shape == (2, 1, 6)
