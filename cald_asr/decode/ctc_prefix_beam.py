"""CTC prefix beam search (Graves 2012, sec. 7.5; Hannun et al. 2014, "First-pass LVCSR ... bi-directional
RNNs", algorithm 1), over token ids, without a language model.

Each hypothesis is a label prefix with two log-probabilities: the summed probability of all alignments
of the frames so far that collapse to it and end in blank (`b`), or end in its last token (`nb`). Per
frame every kept prefix either stays (blank, or a repeat of its last token merged into it) or grows by
one token; a repeat of the last token only grows the prefix from its blank-ending alignments. The
`beam_size` prefixes of highest total probability survive each frame. With a beam wide enough to keep
every prefix the totals are the exact prefix probabilities; after pruning they are lower bounds (an
alignment counts only while all its intermediate prefixes survived).

Why our own and not pyctcdecode: pyctcdecode is well kept, but it decodes into a character string
through its own alphabet/BPE handling, and its install pulls kenlm-oriented machinery; we need
hypotheses as token-id sequences (ESPnet's token_int output, and BPE pieces mapped by our token list),
no LM, and exact prefix probabilities we can test against brute force. The search is ~60 lines.

Beam width 1 is *not* greedy decoding in general: a single kept prefix sums alignments, so it may
keep a prefix whose best frame is not the argmax (see tests/decode/test_ctc_prefix_beam.py for a
2-frame example). Speech2Text therefore uses best-path (greedy) decoding for beam_size 1, as ESPnet
and NeMo do for CTC-only models.
"""

from __future__ import annotations

import heapq
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

NEG_INF = float("-inf")
Hypothesis = Tuple[Tuple[int, ...], float]  # (token ids, log-probability of the prefix)


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def ctc_prefix_beam_search(
    log_probs, beam_size: int = 10, nbest: int = 1, blank: int = 0, token_min_logp: Optional[float] = None
) -> List[Hypothesis]:
    """log_probs: (T, V) per-frame log-probabilities (log-softmax output) of one utterance.

    Per frame only the `beam_size` most likely non-blank tokens (of those, only the ones above
    `token_min_logp`, if given) are tried as extensions, as ESPnet's pre-beam does: a new prefix grown
    by a less likely token is outscored by `beam_size` siblings grown from the same prefix. With
    beam_size >= V nothing is skipped. Returns up to `nbest` (ids, log-prob), best first.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {lp.shape}")
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size}, {nbest}")
    T, V = lp.shape
    k = min(beam_size, V)
    rows = lp.tolist()
    # candidate tokens per frame, most likely first; the blank is handled separately
    order = np.argsort(-lp, axis=1, kind="stable")[:, : k + 1].tolist()
    lae = _logaddexp

    # Prefixes are nodes of a trie (parent, last token), so growing one costs O(1) instead of copying
    # a tuple as long as the transcript; a node is made only for an extension that survives pruning.
    parent, last_tok = [-1], [-1]
    child: Dict[Tuple[int, int], int] = {}
    beams: Dict[int, Tuple[float, float]] = {0: (0.0, NEG_INF)}
    for t in range(T):
        row = rows[t]
        cands = [c for c in order[t] if c != blank][:k]
        if token_min_logp is not None:
            cands = [c for c in cands if row[c] >= token_min_logp] or cands[:1]
        p_blank = row[blank]
        nxt: Dict[object, List[float]] = {}  # key: a node id, or (node, token) for a prefix not made yet
        for node, (pb, pnb) in beams.items():
            total = lae(pb, pnb)
            last = last_tok[node]
            # stay: a blank, or the last token again merged into it
            stay = [total + p_blank, pnb + row[last] if last >= 0 else NEG_INF]
            cur = nxt.get(node)
            if cur is None:
                nxt[node] = stay
            else:
                cur[0], cur[1] = lae(cur[0], stay[0]), lae(cur[1], stay[1])
            for c in cands:
                # a repeated token starts a new label only after a blank
                src = pb if c == last else total
                if src == NEG_INF:
                    continue
                key = child.get((node, c), (node, c))
                cur = nxt.get(key)
                if cur is None:
                    nxt[key] = [NEG_INF, src + row[c]]
                else:
                    cur[1] = lae(cur[1], src + row[c])
        items = nxt.items()
        if len(nxt) > beam_size:
            items = heapq.nlargest(beam_size, items, key=lambda kv: lae(kv[1][0], kv[1][1]))
        beams = {}
        for key, (b, nb) in items:
            if isinstance(key, tuple):
                child[key] = node = len(parent)
                parent.append(key[0])
                last_tok.append(key[1])
                key = node
            beams[key] = (b, nb)

    def ids_of(node: int) -> Tuple[int, ...]:
        out = []
        while node > 0:
            out.append(last_tok[node])
            node = parent[node]
        return tuple(reversed(out))

    final = sorted(((n, lae(*v)) for n, v in beams.items()), key=lambda h: h[1], reverse=True)[:nbest]
    return [(ids_of(n), score) for n, score in final]


def collapse(path: Sequence[int], blank: int = 0) -> Tuple[int, ...]:
    """The label sequence of one alignment: repeats merged, then blanks removed."""
    out = []
    prev = None
    for s in path:
        if s != prev and s != blank:
            out.append(int(s))
        prev = s
    return tuple(out)
