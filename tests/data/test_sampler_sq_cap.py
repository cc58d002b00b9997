"""The cap on the padded sum of squared lengths (batch_sq_bins): long utterances get smaller batches."""

import numpy as np
import pytest

from cald_asr.data.sampler import LengthBucketBatchSampler


def padded(batch, lengths):
    longest = max(lengths[i] for i in batch)
    return len(batch) * longest, len(batch) * longest**2


def test_every_batch_is_under_both_caps_and_holds_every_item_once():
    lengths = np.random.default_rng(0).integers(1_000, 300_000, size=500)  # 0.06 to 19 s at 16 kHz
    bins, sq = 2_000_000, 1.0e11
    batches = list(LengthBucketBatchSampler(lengths, bins, seed=3, max_sq_per_batch=sq))
    assert sorted(i for b in batches for i in b) == list(range(500))
    for b in batches:
        n, s = padded(b, lengths)
        assert len(b) == 1 or (n <= bins and s <= sq)
    # the square cap binds on the long end only: short items still fill batch_bins
    plain = list(LengthBucketBatchSampler(lengths, bins, seed=3))
    assert len(batches) > len(plain)
    assert any(len(b) > 1 and padded(b, lengths)[1] > sq for b in plain), "without it, long batches exceed it"
    assert max(len(b) for b in batches) == max(len(b) for b in plain)


def test_no_cap_is_the_old_packing():
    lengths = list(range(10, 200, 7))
    a = list(LengthBucketBatchSampler(lengths, 500, shuffle=False))
    b = list(LengthBucketBatchSampler(lengths, 500, shuffle=False, max_sq_per_batch=None))
    assert a == b


def test_an_item_over_the_cap_is_alone():
    batches = list(LengthBucketBatchSampler([10, 10, 100], 10_000, shuffle=False, max_sq_per_batch=5_000))
    assert batches == [[0, 1], [2]]


def test_a_bad_cap_is_refused():
    with pytest.raises(ValueError, match="max_sq_per_batch must be positive"):
        LengthBucketBatchSampler([1, 2], 10, max_sq_per_batch=0)
