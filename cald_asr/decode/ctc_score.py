"""The score of a hypothesis: log P(token ids | audio) under the CTC model, summed over every alignment
(the CTC forward algorithm, i.e. minus torch's ctc_loss). Greedy and beam hypotheses get the same,
search-independent score, so n-best lists and decoding modes compare on one scale."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def ctc_log_likelihood(log_probs: torch.Tensor, token_ids: Sequence[int], blank: int = 0) -> float:
    """log_probs: (T, V) log-softmax output of one utterance; token_ids: the label sequence."""
    lp = torch.as_tensor(log_probs, dtype=torch.float64)
    if lp.dim() != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {tuple(lp.shape)}")
    target = torch.tensor([list(token_ids)], dtype=torch.long)
    loss = F.ctc_loss(lp[:, None, :], target, torch.tensor([lp.shape[0]]), torch.tensor([len(token_ids)]),
                      blank=blank, reduction="sum", zero_infinity=False)
    return -float(loss)
