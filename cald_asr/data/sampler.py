"""Length-bucketed batch sampler with a cap on padded size (batch * longest item), as ESPnet's 'numel' bins,
and optionally on the padded sum of squared lengths (batch * longest item ** 2): attention's memory grows with
the square of the length, so a batch of a few long utterances that fits the first cap can still run an
attention teacher out of memory (the CALD paper caps batches by n * len^2 for this reason).

Batches are built from the items sorted by length, so each batch holds similar lengths and little padding.
Each epoch the order among equal lengths and the order of the batches are reshuffled from (seed, epoch),
so the run is reproducible while batches still differ between epochs.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler


class LengthBucketBatchSampler(Sampler[List[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        max_frames_per_batch: int,
        shuffle: bool = True,
        seed: int = 0,
        max_batch_size: Optional[int] = None,
        max_sq_per_batch: Optional[float] = None,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence")
        if (self.lengths <= 0).any():
            bad = int(np.flatnonzero(self.lengths <= 0)[0])
            raise ValueError(f"length of item {bad} is {self.lengths[bad]}; every length must be positive")
        if max_frames_per_batch <= 0:
            raise ValueError(f"max_frames_per_batch must be positive, got {max_frames_per_batch}")
        if max_batch_size is not None and max_batch_size <= 0:
            raise ValueError(f"max_batch_size must be positive, got {max_batch_size}")
        if max_sq_per_batch is not None and max_sq_per_batch <= 0:
            raise ValueError(f"max_sq_per_batch must be positive, got {max_sq_per_batch}")
        self.max_frames = int(max_frames_per_batch)
        self.max_sq = max_sq_per_batch
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        # The batch count depends only on the sorted lengths, which do not change with the epoch.
        self._num_batches = len(self._make_batches(np.argsort(self.lengths, kind="stable")))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _make_batches(self, order: np.ndarray) -> List[List[int]]:
        """Greedy packing of indices sorted by ascending length: a batch's padded size is len(batch) times
        the length of its last (longest) item, its padded sum of squares len(batch) times that length squared;
        an item over a cap alone makes its own batch."""
        batches: List[List[int]] = []
        cur: List[int] = []
        for idx in order:
            n = len(cur) + 1
            length = int(self.lengths[idx])
            too_big = n * length > self.max_frames or (self.max_sq is not None and n * length * length > self.max_sq)
            too_many = self.max_batch_size is not None and n > self.max_batch_size
            if cur and (too_big or too_many):
                batches.append(cur)
                cur = []
            cur.append(int(idx))
        if cur:
            batches.append(cur)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        if not self.shuffle:
            yield from self._make_batches(np.argsort(self.lengths, kind="stable"))
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        tie_break = rng.permutation(len(self.lengths))
        order = np.lexsort((tie_break, self.lengths))
        batches = self._make_batches(order)
        for b in rng.permutation(len(batches)):
            yield batches[b]

    def __len__(self) -> int:
        return self._num_batches
