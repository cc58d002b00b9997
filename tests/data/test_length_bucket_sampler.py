import numpy as np
import pytest

from cald_asr.data.sampler import LengthBucketBatchSampler

CAP = 4000


@pytest.fixture(scope="module")
def lengths():
    # Real FSDD durations span 0.14-2.28 s; in 10 ms frames that is 14-228. Seeded, so the test is fixed.
    rng = np.random.default_rng(123)
    out = rng.integers(14, 229, size=500).tolist()
    out[17] = 9000  # longer than the cap on its own
    return out


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return [list(b) for b in sampler]


def test_every_utterance_exactly_once_per_epoch(lengths):
    s = LengthBucketBatchSampler(lengths, CAP, seed=5)
    for epoch in range(3):
        flat = [i for b in epoch_batches(s, epoch) for i in b]
        assert sorted(flat) == list(range(len(lengths)))


def test_padded_size_is_capped_and_long_item_is_alone(lengths):
    s = LengthBucketBatchSampler(lengths, CAP, seed=5)
    batches = epoch_batches(s, 0)
    for b in batches:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= CAP or len(b) == 1
    assert [17] in batches
    # Bucketing keeps padding low: padded frames exceed real frames by well under 10 %.
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b != [17])
    real = sum(lengths) - lengths[17]
    assert padded / real < 1.10


def test_max_batch_size(lengths):
    s = LengthBucketBatchSampler(lengths, 10**9, seed=0, max_batch_size=7)
    batches = epoch_batches(s, 0)
    assert max(len(b) for b in batches) == 7
    assert len(batches) == len(s) == -(-len(lengths) // 7)


def test_deterministic_for_seed_and_epoch(lengths):
    a = LengthBucketBatchSampler(lengths, CAP, seed=5)
    b = LengthBucketBatchSampler(lengths, CAP, seed=5)
    assert epoch_batches(a, 3) == epoch_batches(b, 3)
    assert epoch_batches(a, 3) == epoch_batches(a, 3)


def test_differs_across_epochs_and_seeds(lengths):
    s = LengthBucketBatchSampler(lengths, CAP, seed=5)
    e0, e1 = epoch_batches(s, 0), epoch_batches(s, 1)
    assert e0 != e1
    # Not only the batch order: the grouping of equal-length items changes too.
    assert sorted(map(sorted, e0)) != sorted(map(sorted, e1))
    other = LengthBucketBatchSampler(lengths, CAP, seed=6)
    assert epoch_batches(other, 0) != e0


def test_len_matches_iteration(lengths):
    s = LengthBucketBatchSampler(lengths, CAP, seed=1)
    assert all(len(epoch_batches(s, e)) == len(s) for e in range(4))


def test_no_shuffle_is_ascending_length(lengths):
    s = LengthBucketBatchSampler(lengths, CAP, shuffle=False)
    flat = [lengths[i] for b in s for i in b]
    assert flat == sorted(lengths)


def test_bad_arguments():
    with pytest.raises(ValueError, match="length of item 1 is 0"):
        LengthBucketBatchSampler([3, 0, 2], 10)
    with pytest.raises(ValueError, match="max_frames_per_batch"):
        LengthBucketBatchSampler([3], 0)
