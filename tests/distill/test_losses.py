"""The distillation terms against hand computations on small padded tensors."""

import math

import torch

from cald_asr.distill.losses import layer_loss_sum, logits_kl_sum


def test_layer_loss_by_hand_with_padding():
    # one layer, B=2, T=2, D=2; utterance 1 has one valid frame, its padded frame holds garbage
    s = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.5], [100.0, -7.0]]])
    t = torch.tensor([[[3.0, 1.0], [5.0, 5.0]], [[0.0, 1.0], [0.0, 0.0]]])
    lengths = torch.tensor([2, 1])
    total, frames = layer_loss_sum([s], [t], lengths)
    # affine-free LayerNorm of a 2-vector (a, b): ((a-b)/2, (b-a)/2) / sqrt(((a-b)/2)^2 + eps) ~ sign * 1
    eps = 1e-5

    def ln(a, b):
        h = (a - b) / 2
        return (h / math.sqrt(h * h + eps), -h / math.sqrt(h * h + eps))

    def mse(x, y):
        return ((x[0] - y[0]) ** 2 + (x[1] - y[1]) ** 2) / 2

    expected = (
        mse(ln(1, 3), ln(3, 1))  # utt 0 frame 0: opposite signs -> (2^2 + 2^2)/2 = 4
        + mse(ln(0, 0), ln(5, 5))  # utt 0 frame 1: both constant -> LN gives 0 and 0
        + mse(ln(2, 2.5), ln(0, 1))
    )  # utt 1 frame 0: same sign pattern -> ~0
    assert frames == 3
    assert math.isclose(total.item(), expected, rel_tol=1e-5)
    assert math.isclose(expected, 4.0, rel_tol=1e-3)


def test_layer_loss_averages_layers():
    torch.manual_seed(0)
    s = [torch.randn(2, 5, 8) for _ in range(3)]
    t = [torch.randn(2, 5, 8) for _ in range(3)]
    lengths = torch.tensor([5, 3])
    total, n = layer_loss_sum(s, t, lengths)
    per_layer = [layer_loss_sum([a], [b], lengths)[0] for a, b in zip(s, t)]
    assert n == 8
    assert torch.allclose(total, sum(per_layer) / 3)


def test_layer_loss_is_scale_invariant_per_frame():
    torch.manual_seed(1)
    t = torch.randn(1, 4, 16)
    total, _ = layer_loss_sum([3.0 * t + 2.0], [t], torch.tensor([4]))
    assert total.item() < 1e-6


def test_logits_kl_by_hand_with_padding():
    # B=1, T=2 (second frame padded), V=2, temperature 2
    s = torch.tensor([[[0.0, 2.0], [9.0, -9.0]]])
    t = torch.tensor([[[2.0, 0.0], [-9.0, 9.0]]])
    total, frames = logits_kl_sum(s, t, torch.tensor([1]), temperature=2.0)
    p_t = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax([1, 0])
    p_s = [p_t[1], p_t[0]]
    kl = sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    assert frames == 1
    assert math.isclose(total.item(), 4.0 * kl, rel_tol=1e-6)


def test_logits_kl_zero_for_equal_distributions():
    x = torch.randn(2, 3, 5)
    total, _ = logits_kl_sum(x, x.clone(), torch.tensor([3, 2]))
    assert abs(total.item()) < 1e-6
