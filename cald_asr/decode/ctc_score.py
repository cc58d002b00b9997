"""The score of a hypothesis: log P(token ids | audio) under the CTC model, summed over every alignment
(the CTC forward algorithm, i.e. minus torch's ctc_loss). Greedy and beam hypotheses get the same,
search-independent score, so n-best lists and decoding modes compare on one scale.

Cost: torch's ctc_loss keeps the whole (frames x (2U+1)) table of forward variables, in float64 here.
For a 10-minute recording (30k frames, 5k tokens) that is 2.6 GB and, as both sides grow with the audio,
time quadratic in its length. Beyond MAX_TABLE entries the forward pass runs instead over a moving band
of the labels: a CTC posterior is peaky, so at any frame only the few labels near the current position
of the alignment hold probability mass; labels below BAND_FLOOR times the frame's largest forward variable
(1e-30: below float64's resolution of the sum) are dropped from the band. Time and memory are then
linear in the frames for any peaky model (a flat posterior only widens the band, up to the full table)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# entries of the frames x (2U+1) table above which the banded forward pass is used (= 128 MB in float64)
MAX_TABLE = 16_000_000
BAND_FLOOR = 1e-30


def ctc_log_likelihood(log_probs: torch.Tensor, token_ids: Sequence[int], blank: int = 0) -> float:
    """log_probs: (T, V) log-softmax output of one utterance; token_ids: the label sequence."""
    lp = torch.as_tensor(log_probs, dtype=torch.float64)
    if lp.dim() != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {tuple(lp.shape)}")
    ids = list(token_ids)
    if lp.shape[0] * (2 * len(ids) + 1) > MAX_TABLE:
        return ctc_forward_banded(lp, ids, blank)
    target = torch.tensor([ids], dtype=torch.long)
    loss = F.ctc_loss(
        lp[:, None, :],
        target,
        torch.tensor([lp.shape[0]]),
        torch.tensor([len(ids)]),
        blank=blank,
        reduction="sum",
        zero_infinity=False,
    )
    return -float(loss)


def ctc_forward_banded(log_probs, token_ids: Sequence[int], blank: int = 0, floor: float = BAND_FLOOR) -> float:
    """The CTC forward algorithm over the blank-extended labels, in the probability domain with one
    scale factor per frame, kept only over the band of labels whose forward variable is at least
    `floor` times the frame's largest (floor 0 keeps every reachable label: the exact forward pass)."""
    lp = np.asarray(torch.as_tensor(log_probs, dtype=torch.float64))
    T = lp.shape[0]
    S = 2 * len(token_ids) + 1
    ext = np.full(S, blank, dtype=np.int64)
    ext[1::2] = np.asarray(list(token_ids), dtype=np.int64)
    if T == 0:
        return 0.0 if S == 1 else float("-inf")
    # a label may be reached from two states back when it is not blank and differs from that label
    skip = np.zeros(S, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    # alpha[lo:hi] holds the band; frame t's probabilities as exp(row - row max), the max into the log scale
    lo, hi = 0, min(2, S)
    row = lp[0]
    alpha = np.exp(row[ext[lo:hi]] - row.max())
    log_scale = float(row.max())
    for t in range(1, T):
        if lo >= hi:
            return float("-inf")
        new_hi = min(hi + 2, S)
        a = np.zeros(new_hi - lo)
        a[: hi - lo] = alpha
        nxt = a.copy()
        nxt[1:] += a[:-1]  # the label just below the band was dropped: it is no source
        nxt[2:] += a[:-2] * skip[lo + 2 : new_hi]
        row = lp[t]
        m = row.max()
        nxt *= np.exp(row[ext[lo:new_hi]] - m)
        top = nxt.max()
        if top <= 0.0:
            return float("-inf")
        nxt /= top
        log_scale += float(m) + float(np.log(top))
        keep = np.flatnonzero(nxt >= floor)
        alpha = nxt[keep[0] : keep[-1] + 1]
        lo, hi = lo + int(keep[0]), lo + int(keep[-1]) + 1
    ends = [s for s in (S - 2, S - 1) if s >= 0 and lo <= s < hi]
    total = sum(float(alpha[s - lo]) for s in ends)
    return log_scale + float(np.log(total)) if total > 0 else float("-inf")
