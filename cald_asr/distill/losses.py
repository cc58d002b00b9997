"""CALD's distillation terms, returned as (sum, count) so that a step's loss is normalised by the counts
of the whole optimiser step (all micro-batches, all ranks): the weights alpha_layer and alpha_logits then
mean the same whatever the batch size, gradient accumulation or number of processes.

L_layer: for every layer l, student and teacher outputs are each normalised by a LayerNorm without affine
parameters, compared by mean squared error over channels, averaged over valid frames, then over layers.
L_logits: KL(teacher || student) of the per-frame output distributions at temperature tau, scaled by
tau^2 (so its gradient keeps the magnitude of the tau = 1 term), summed over the vocabulary and averaged
over valid frames. A classifier has one distribution per utterance (logits (B, C)): its KL is averaged
over utterances instead, and the count returned is the number of utterances.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from cald_asr.models.attention import length_mask
from cald_asr.precision import upcast


def _valid(lengths: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    return length_mask(lengths, T).to(dtype)


def layer_loss_sum(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], lengths: torch.Tensor
) -> Tuple[torch.Tensor, int]:
    """(sum over valid frames of the per-frame loss averaged over layers, number of valid frames)."""
    if len(student) != len(teacher):
        raise ValueError(
            f"student has {len(student)} hidden states, teacher {len(teacher)}: "
            "layerwise distillation needs one teacher layer per student layer"
        )
    per_frame = 0.0
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise ValueError(f"student hidden state {tuple(s.shape)} != teacher {tuple(t.shape)}")
        d = s.shape[-1]
        s_n = F.layer_norm(upcast(s), (d,))
        t_n = F.layer_norm(upcast(t).to(s_n.dtype), (d,))
        per_frame = per_frame + ((s_n - t_n) ** 2).mean(-1)
    per_frame = per_frame / len(student)
    mask = _valid(lengths, student[0].shape[1], per_frame.dtype)  # (B, T)
    return (per_frame * mask).sum(), int(lengths.sum())


def logits_kl_sum(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, lengths: torch.Tensor, temperature: float = 2.0
) -> Tuple[torch.Tensor, int]:
    """(sum over valid frames of tau^2 * KL(p_teacher || p_student) at temperature tau, valid frames);
    for per-utterance logits (B, C): (sum over utterances, utterances), lengths unused."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} != teacher {tuple(teacher_logits.shape)}")
    tau = float(temperature)
    log_p_s = F.log_softmax(upcast(student_logits) / tau, dim=-1)
    log_p_t = F.log_softmax(upcast(teacher_logits).to(log_p_s.dtype) / tau, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (B, T), or (B,) per utterance
    if student_logits.dim() == 2:
        return kl.sum() * tau * tau, int(kl.shape[0])
    mask = _valid(lengths, student_logits.shape[1], kl.dtype)
    return (kl * mask).sum() * tau * tau, int(lengths.sum())
