"""The score of a hypothesis: log P(token ids | audio) under the CTC model, summed over every alignment
(the CTC forward algorithm, i.e. minus torch's ctc_loss). Greedy and beam hypotheses get the same,
search-independent score, so n-best lists and decoding modes compare on one scale.

Memory: torch's ctc_loss keeps the whole (frames x (2U+1)) table of forward variables, in float64 here.
For a 10-minute recording (30k frames, 5k tokens) that is 2.6 GB and most of the decoding time, so
beyond MAX_TABLE entries the forward variables are kept one frame at a time instead."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

# entries of the frames x (2U+1) table above which the one-row forward pass is used (= 128 MB in float64)
MAX_TABLE = 16_000_000


def ctc_log_likelihood(log_probs: torch.Tensor, token_ids: Sequence[int], blank: int = 0) -> float:
    """log_probs: (T, V) log-softmax output of one utterance; token_ids: the label sequence."""
    lp = torch.as_tensor(log_probs, dtype=torch.float64)
    if lp.dim() != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {tuple(lp.shape)}")
    ids = list(token_ids)
    if lp.shape[0] * (2 * len(ids) + 1) > MAX_TABLE:
        return ctc_forward_rolling(lp, ids, blank)
    target = torch.tensor([ids], dtype=torch.long)
    loss = F.ctc_loss(lp[:, None, :], target, torch.tensor([lp.shape[0]]), torch.tensor([len(ids)]),
                      blank=blank, reduction="sum", zero_infinity=False)
    return -float(loss)


def ctc_forward_rolling(lp: torch.Tensor, token_ids: Sequence[int], blank: int = 0) -> float:
    """The CTC forward algorithm over the blank-extended labels with one row of forward variables:
    memory linear in the number of labels, time frames x labels (one vectorised update per frame)."""
    lp = torch.as_tensor(lp, dtype=torch.float64)
    T = lp.shape[0]
    ext = torch.full((2 * len(token_ids) + 1,), blank, dtype=torch.long)
    if token_ids:
        ext[1::2] = torch.tensor(list(token_ids), dtype=torch.long)
    S = ext.numel()
    if T == 0:
        return 0.0 if S == 1 else float("-inf")
    # a label may be reached from two states back when it is not blank and differs from that label
    skip = torch.zeros(S, dtype=torch.bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = lp[:, ext]  # (T, S): each frame's log-probability of each extended label
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)
    alpha = torch.full((S,), float("-inf"), dtype=torch.float64)
    alpha[0] = emit[0, 0]
    if S > 1:
        alpha[1] = emit[0, 1]
    prev1 = torch.empty_like(alpha)
    prev2 = torch.empty_like(alpha)
    for t in range(1, T):
        prev1[0] = neg_inf
        prev1[1:] = alpha[:-1]
        prev2[:2] = neg_inf
        prev2[2:] = alpha[:-2]
        prev2.masked_fill_(~skip, float("-inf"))
        alpha = torch.logaddexp(torch.logaddexp(alpha, prev1), prev2).add_(emit[t])
    tail = alpha[-2:] if S > 1 else alpha[-1:]
    return float(torch.logsumexp(tail, 0))
