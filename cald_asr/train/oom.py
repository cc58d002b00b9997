"""Running out of memory on a batch. An attention teacher's memory grows with n x longest^2, so one batch of
long utterances can exhaust a GPU that every other batch fits. The error then names the batch (its
utterances, padded size and padded sum of squared lengths) and the options that bound it; with
`skip_oom_batches: true` the batch is skipped, counted and logged like a non-finite one, on every rank together.

Every rank learns of an out-of-memory forward pass through the same all-reduce that agrees on a finite loss
(distributed.agree_min), so all skip the step together. In one process a backward pass out of memory is
skipped the same way; under DistributedDataParallel it cannot be skipped by that rank alone (the others may
already wait in the gradient all-reduce): it stops the run with the same message, and torchrun ends the
other ranks."""

from __future__ import annotations

from typing import List, Sequence

import torch

from cald_asr.data.augment import step_lengths

# torch.OutOfMemoryError (CUDA's caching allocator) is the class torch.cuda.OutOfMemoryError names
OOM_ERRORS = (torch.cuda.OutOfMemoryError,)


class BatchOutOfMemory(RuntimeError):
    """A training batch did not fit in memory (and skip_oom_batches is off)."""


def _utt_ids(dataset) -> List[str]:
    while not hasattr(dataset, "utt_ids") and hasattr(dataset, "base"):  # AugmentedDataset wraps its base
        dataset = dataset.base
    return list(getattr(dataset, "utt_ids", []))


def describe_batches(dataset, group: Sequence[Sequence[int]], cfg: dict) -> str:
    """The step's global batches: utterances, padded size, padded sum of squared lengths, and the options."""
    ids, lens = _utt_ids(dataset), [step_lengths(dataset, b) for b in group]
    utts = [ids[i] if i < len(ids) else str(i) for b in group for i in b]
    n = len(utts)
    padded = sum(len(x) * max(x) for x in lens)
    squared = sum(len(x) * max(x) ** 2 for x in lens)
    longest = max(max(x) for x in lens)
    shown = ", ".join(utts[:4]) + (f", ... ({n - 4} more)" if n > 4 else "")
    return (
        f"{n} utterance(s) ({shown}), padded size {padded} (longest {longest}; samples of raw audio, frames of "
        f"features, tokens of text), padded sum of squared lengths {squared:.4g}; batches are bounded by "
        f"batch_bins ({cfg['batch_bins']}), batch_sq_bins ({cfg['batch_sq_bins']}) and max_batch_size "
        f"({cfg['max_batch_size']}): lower one, or set skip_oom_batches: true to skip such batches"
    )


def release_memory(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Drop the failed step's gradients and hand cached blocks back, so the next batch starts clean."""
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
