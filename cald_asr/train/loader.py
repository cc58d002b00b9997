"""Parallel data loading for training: a torch DataLoader over the epoch's length-bucketed batches, so that
audio decoding, resampling, augmentation and feature reading run in `num_workers` processes while the model
trains (a GPU would otherwise wait for them between steps).

The batches are the sampler's (the same for every rank), each cut to this rank's shard, in the order the
trainer consumes them, starting at the batch a resumed run stopped at: a run with 0 or N workers sees the same
batches, and a resumed one continues at the exact batch. Each index travels with its epoch, because the
augmentation draws per (seed, epoch, utterance) and persistent workers keep their own copy of the dataset.

A bad utterance read in a worker raises, in the training process, the same exception (type and message,
naming the utterance and file) as without workers, not a worker traceback; a worker that dies (killed, out of
memory) or stalls past `loader_timeout_s` stops the run with a message saying so. Checkpoints are untouched."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Sequence

import torch
from torch.utils.data import DataLoader, Sampler


class DataLoadingError(RuntimeError):
    """A data-loading worker died or stalled."""


class _Failed:
    """What a worker returns instead of an item it could not read: the exception, re-raised in the trainer."""

    def __init__(self, error: BaseException):
        self.error = error


class _EpochItems:
    """dataset[(epoch, i)]: item i as drawn in that epoch; an exception is returned, not raised."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        try:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            return self.dataset[i]
        except Exception as e:  # noqa: BLE001 - handed to the trainer, which raises it as it is
            return _Failed(e)


class _Plan(Sampler[List[Any]]):
    """The batches the trainer will consume this epoch, as [(epoch, index), ...] lists; set before each epoch
    (it is iterated in the training process, so persistent workers need no new copy)."""

    def __init__(self):
        self.batches: List[List[Any]] = []

    def set(self, batches: Sequence[Sequence[int]], epoch: int) -> None:
        self.batches = [[(epoch, i) for i in b] for b in batches]

    def __iter__(self) -> Iterator[List[Any]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


def _collate_or_fail(collate: Callable):
    def run(items):
        failed = next((it for it in items if isinstance(it, _Failed)), None)
        return failed if failed is not None else collate(items)

    return run


class BatchLoader:
    """Iterates this rank's collated shards of an epoch's batches; `epoch(batches, epoch)` starts one."""

    def __init__(self, dataset, collate: Callable, cfg: Dict[str, Any], pin_memory: bool = False):
        self.plan = _Plan()
        workers = int(cfg["num_workers"])
        extra = {}
        if workers:
            extra = {
                "persistent_workers": bool(cfg["persistent_workers"]),
                "prefetch_factor": int(cfg["prefetch_factor"]),
                "timeout": float(cfg["loader_timeout_s"]),
            }
        self.loader = DataLoader(
            _EpochItems(dataset),
            batch_sampler=self.plan,
            collate_fn=_collate_or_fail(collate),
            num_workers=workers,
            pin_memory=pin_memory and bool(cfg["pin_memory"]),
            # every iter() draws a base seed from this generator: from torch's global one it would shift the
            # dropout and SpecAugment draws of a resumed run (one more iter() mid-epoch) against the straight run
            generator=torch.Generator().manual_seed(int(cfg["seed"])),
            **extra,
        )
        self.workers = workers

    def epoch(self, shards: Sequence[Sequence[int]], epoch: int) -> Iterator[Dict[str, Any]]:
        """The collated batches of `shards` (lists of dataset indices), in order."""
        self.plan.set(shards, epoch)
        it = iter(self.loader)
        for _ in range(len(shards)):
            try:
                batch = next(it)
            except RuntimeError as e:
                text = " ".join(str(e).split())
                if "DataLoader worker" in text or "timed out" in text:
                    raise DataLoadingError(
                        f"data loading failed ({text[:300]}); with num_workers {self.workers}, a worker that "
                        "runs out of memory is killed: lower num_workers or batch_bins, then resume (--resume)"
                    ) from None
                raise
            if isinstance(batch, _Failed):
                raise batch.error
            yield batch


def pin_memory_default(device: torch.device) -> bool:
    return device.type == "cuda"
