"""L_logits for a classifier: one distribution per utterance, KL(teacher || student) summed over utterances
and counted per utterance, worked out by hand."""

import math

import torch

from cald_asr.distill.losses import logits_kl_sum


def test_kl_of_class_logits_by_hand():
    teacher = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    student = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0], [2.0, 2.0]])
    total, count = logits_kl_sum(student, teacher, torch.tensor([5, 9, 2]), temperature=1.0)
    # utterance 1: p_t = (1/2, 1/2), p_s = (3/4, 1/4): 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); 2 and 3: p_s = p_t
    assert count == 3, "counted per utterance, whatever the token lengths"
    assert abs(total.item() - 0.5 * math.log(4 / 3)) < 1e-6


def test_temperature_softens_and_rescales_by_tau_squared():
    teacher, student = torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * math.log(3.0), 0.0]])
    total, count = logits_kl_sum(student, teacher, torch.tensor([4]), temperature=2.0)
    # at tau 2 the student's logits halve to (ln 3, 0): the KL above, times tau^2 = 4
    assert count == 1 and abs(total.item() - 4 * 0.5 * math.log(4 / 3)) < 1e-6
