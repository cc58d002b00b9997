"""Data-parallel training on torch's own engine: torchrun starts the processes (one per GPU, or CPU
processes with the gloo backend), DistributedDataParallel syncs gradients; this module only reads the
environment torchrun sets and splits each global batch among the ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, List, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(use_cuda: bool, timeout_s: float = 600.0) -> DistInfo:
    """This process's rank under torchrun. `timeout_s` bounds every collective: a rank left waiting on one
    that died fails after it (torchrun's agent usually ends the others first, naming the dead rank)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local)


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group together. Without this, a rank that reaches interpreter exit while gloo's
    threads still run aborts ("terminate called without an active exception", SIGABRT): seen once in CI on a
    2-process run stopped by --stop_after, which torchrun then reports as a failed run."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(batch: Sequence[int], info: DistInfo) -> List[int]:
    """This rank's share of a global batch (every rank sees the same global batches)."""
    return list(batch[info.rank :: info.world_size])


def agree_min(code: int, info: DistInfo) -> int:
    """The lowest of every rank's `code` (a collective: every rank must call it)."""
    if not info.enabled:
        return code
    t = torch.tensor([code], dtype=torch.int32)
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def all_true(flag: bool, info: DistInfo) -> bool:
    return bool(agree_min(1 if flag else 0, info))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """[rank 0's obj, rank 1's, ...] on every rank (a collective: every rank must call it)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
