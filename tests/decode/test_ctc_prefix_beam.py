"""CTC prefix beam search and the CTC score against brute force over every alignment."""

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from cald_asr.decode.ctc_greedy import ctc_greedy
from cald_asr.decode.ctc_prefix_beam import collapse, ctc_prefix_beam_search
from cald_asr.decode.ctc_score import ctc_log_likelihood


def brute_force(probs: np.ndarray):
    """{labeling: P(labeling)} summed over all V**T alignments, sorted most likely first."""
    T, V = probs.shape
    total = defaultdict(float)
    for path in itertools.product(range(V), repeat=T):
        total[collapse(path)] += float(np.prod(probs[np.arange(T), list(path)]))
    return sorted(total.items(), key=lambda kv: kv[1], reverse=True)


def random_probs(T, V, seed, sharpness=2.0):
    logits = np.random.default_rng(seed).standard_normal((T, V)) * sharpness
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([0, 1, 1, 0, 1, 2, 2, 0]) == (1, 1, 2)
    assert collapse([0, 0]) == ()


@pytest.mark.parametrize("T,V,seed", [(5, 3, 0), (4, 4, 1), (6, 3, 2)])
def test_full_beam_gives_exact_prefix_probabilities(T, V, seed):
    """A beam that keeps every prefix returns every labeling with its exact probability."""
    probs = random_probs(T, V, seed)
    exact = brute_force(probs)
    hyps = ctc_prefix_beam_search(np.log(probs), beam_size=V**T, nbest=len(exact))
    assert [h[0] for h in hyps][:5] == [e[0] for e in exact][:5]
    got = dict(hyps)
    assert set(got) == {e[0] for e in exact}
    for lab, p in exact:
        assert math.exp(got[lab]) == pytest.approx(p, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_pruned_beam_scores_are_lower_bounds_and_sorted(seed):
    probs = random_probs(7, 4, seed, sharpness=1.0)
    exact = dict(brute_force(probs))
    hyps = ctc_prefix_beam_search(np.log(probs), beam_size=3, nbest=3)
    assert len(hyps) == 3 and len({h[0] for h in hyps}) == 3
    assert [h[1] for h in hyps] == sorted((h[1] for h in hyps), reverse=True)
    for lab, lp in hyps:
        assert math.exp(lp) <= exact[lab] * (1 + 1e-9)


# Hand-made: blank-heavy frames where the best labeling is not the best path. Per frame (blank, a, b):
HAND = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.5, 0.1, 0.4]]) + 1e-12


def test_beam_finds_the_most_probable_labeling_where_greedy_does_not():
    exact = brute_force(HAND / HAND.sum(1, keepdims=True))
    # by hand, paths to "a": a__ .12, _a_ .12, aa_ .08, __a .036, _aa .024, aaa .016 -> 0.396;
    # "ab": a_b .096, _ab .096, aab .064 -> 0.256; "" (the greedy path ___) 0.18; "b" (__b) 0.144
    assert exact[0][0] == (1,) and exact[0][1] == pytest.approx(0.396, abs=1e-9)
    assert ctc_greedy(torch.tensor(np.log(HAND))[None], torch.tensor([3]))[0] == []
    ((top, lp),) = ctc_prefix_beam_search(np.log(HAND), beam_size=3)
    assert top == (1,) and math.exp(lp) == pytest.approx(0.396, abs=1e-9)


def test_beam_one_is_not_best_path_decoding():
    """Why Speech2Text uses greedy for beam 1: a single prefix sums alignments. Frame 1: a 0.6, blank 0.4;
    frame 2: b 0.4, blank 0.35, a 0.25. Greedy reads "ab"; the kept prefix "a" (0.6*0.35 + 0.6*0.25 = 0.36)
    outscores "ab" (0.6*0.4 = 0.24)."""
    lp = np.log(np.array([[0.4, 0.6, 1e-12], [0.35, 0.25, 0.4]]))
    assert ctc_greedy(torch.tensor(lp)[None], torch.tensor([2]))[0] == [1, 2]
    assert ctc_prefix_beam_search(lp, beam_size=1)[0][0] == (1,)


@pytest.mark.parametrize("seed", range(3))
def test_ctc_log_likelihood_matches_brute_force(seed):
    probs = random_probs(5, 3, seed)
    for lab, p in brute_force(probs)[:6] + [((), None)]:
        want = p if p is not None else float(np.prod(probs[:, 0]))
        assert math.exp(ctc_log_likelihood(torch.tensor(np.log(probs)), lab)) == pytest.approx(want, rel=1e-9)


def test_token_min_logp_prunes_unlikely_extensions():
    lp = np.log(random_probs(6, 5, 3))
    full = ctc_prefix_beam_search(lp, beam_size=5, nbest=5)
    pruned = ctc_prefix_beam_search(lp, beam_size=5, nbest=5, token_min_logp=math.log(0.3))
    assert full != pruned
    # a token is tried only where it is above the threshold or the frame's most likely non-blank token
    allowed = (lp >= math.log(0.3)) | (lp == lp[:, 1:].max(1, keepdims=True))
    for ids, _ in pruned:
        assert all(allowed[:, t].any() for t in ids)
    assert any(not (lp[:, t] >= math.log(0.3)).any() for ids, _ in full for t in ids)


def _torch_ctc(lp, lab):
    return -float(
        torch.nn.functional.ctc_loss(
            lp[:, None],
            torch.tensor([lab], dtype=torch.long),
            torch.tensor([lp.shape[0]]),
            torch.tensor([len(lab)]),
            reduction="sum",
        )
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("floor", [0.0, 1e-30])
def test_banded_ctc_forward_equals_torch_ctc_loss(seed, floor):
    # the long-recording path of the hypothesis score against torch's full-table ctc_loss, with
    # repeated labels (which forbid the skip transition) and a label sequence as long as it can be;
    # flat random posteriors: the band covers nearly every label, with or without the floor
    from cald_asr.decode.ctc_score import ctc_forward_banded

    g = torch.Generator().manual_seed(seed)
    T, V = 40 + 7 * seed, 6
    lp = torch.randn(T, V, generator=g, dtype=torch.float64).log_softmax(-1)
    for n in (0, 1, 5, 19):
        lab = torch.randint(1, V, (n,), generator=g).tolist()
        if n >= 2:
            lab[1] = lab[0]  # a repeat
        assert ctc_forward_banded(lp, lab, floor=floor) == pytest.approx(_torch_ctc(lp, lab), rel=1e-10, abs=1e-10)
    # more labels than frames can align: probability 0
    assert ctc_forward_banded(lp[:3], [1, 1, 2], floor=floor) == float("-inf")


def test_banded_ctc_forward_on_a_peaky_long_posterior(monkeypatch):
    # what a trained model gives: each label's frames near-certain, blanks between; the band stays
    # narrow and the score still equals the full table's, also for a hypothesis other than the best
    from cald_asr.decode import ctc_score
    from cald_asr.decode.ctc_score import ctc_forward_banded, ctc_log_likelihood

    g = torch.Generator().manual_seed(0)
    V, n = 8, 700
    lab = torch.randint(1, V, (n,), generator=g).tolist()
    frames = []
    for tok in lab:
        frames += [0] * int(torch.randint(1, 6, (1,), generator=g)) + [tok] * int(
            torch.randint(1, 3, (1,), generator=g)
        )
    frames += [0, 0]
    logits = torch.randn(len(frames), V, generator=g, dtype=torch.float64)
    logits[torch.arange(len(frames)), torch.tensor(frames)] += 9.0
    lp = logits.log_softmax(-1)
    other = lab[:300] + lab[301:]  # one deletion
    for hyp in (lab, other):
        want = _torch_ctc(lp, hyp)
        assert ctc_forward_banded(lp, hyp) == pytest.approx(want, rel=1e-9)
    # the entry point picks the band beyond MAX_TABLE
    below = ctc_log_likelihood(lp, other)
    monkeypatch.setattr(ctc_score, "MAX_TABLE", 1000)
    assert ctc_log_likelihood(lp, other) == pytest.approx(below, rel=1e-9)
