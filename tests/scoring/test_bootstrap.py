"""Bootstrap intervals of a corpus WER (cald_asr/scoring/bootstrap.py) on cases whose answer is known by hand."""

import numpy as np
import pytest

from cald_asr.scoring import score_texts
from cald_asr.scoring.bootstrap import bootstrap_rates, rate_interval, report_interval


def test_equal_utterances_collapse_the_interval_to_the_rate():
    # ten utterances of 1 error in 4 words: every resampling has WER 25 %
    assert rate_interval([1] * 10, [4] * 10) == (25.0, 25.0)
    assert rate_interval([0] * 7, [3] * 7) == (0.0, 0.0)


def test_two_utterances_give_the_three_corpus_rates_of_a_draw_of_two():
    # utterance A: 1 error in 1 word, B: 0 in 9. A draw of two holds AA (WER 2/2), AB or BA (1/10: errors and
    # words are summed, not per-utterance rates averaged, which would give 50 %) or BB (0/18),
    # with probabilities 1/4, 1/2, 1/4.
    rates = bootstrap_rates([1, 0], [1, 9], draws=1000, seed=0)
    values, counts = np.unique(rates, return_counts=True)
    assert values.tolist() == [0.0, 10.0, 100.0]
    share = counts / 1000
    sigma = np.sqrt(np.array([0.25 * 0.75, 0.5 * 0.5, 0.25 * 0.75]) / 1000)
    assert np.all(np.abs(share - [0.25, 0.5, 0.25]) < 5 * sigma), share
    # 2.5th and 97.5th percentiles fall inside the 25 % at each end
    assert rate_interval([1, 0], [1, 9]) == (0.0, 100.0)


def test_seeded_and_resampling_with_replacement():
    errors, words = [3, 0, 1, 5, 2, 0, 0, 4], [10, 8, 9, 12, 7, 5, 6, 11]
    a = bootstrap_rates(errors, words, draws=300, seed=7)
    assert np.array_equal(a, bootstrap_rates(errors, words, draws=300, seed=7))
    assert not np.array_equal(a, bootstrap_rates(errors, words, draws=300, seed=8))
    # with replacement: some draws hold an utterance twice, so rates beyond a permutation's single value occur
    point = 100.0 * sum(errors) / sum(words)
    assert len(np.unique(a)) > 50 and np.all(a >= 0)
    low, high = rate_interval(errors, words, draws=300, seed=7)
    assert low < point < high
    # the interval is the 2.5 and 97.5 percentiles of exactly those draws
    assert (low, high) == tuple(np.percentile(a, [2.5, 97.5]))


def test_report_interval_counts_word_errors_per_utterance():
    refs = {"u1": "YES NO YES", "u2": "NO NO", "u3": "YES"}
    hyps = {"u1": "YES YES", "u2": "NO NO", "u3": "NO"}  # u1: 1 sub + 1 del, u3: 1 sub
    report = score_texts(refs, hyps)
    assert report_interval(report, draws=200, seed=3) == rate_interval([2, 0, 1], [3, 2, 1], draws=200, seed=3)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="two lists of one length"):
        bootstrap_rates([1, 2], [3])
    with pytest.raises(ValueError, match="no utterance"):
        bootstrap_rates([], [])
    with pytest.raises(ValueError, match="level must be"):
        rate_interval([1], [2], level=100)
