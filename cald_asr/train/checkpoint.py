"""Training checkpoints: everything needed to continue a run exactly, written atomically.

Saved with torch.save and read with torch.load(weights_only=True): tensors, numbers, strings and
containers only, so reading a checkpoint never executes code. A kill at any moment leaves a readable
checkpoint: the new one is written to a temporary file in the same directory and fsync'd; then the
latest becomes `checkpoint.prev.pt` and the new file becomes `checkpoint.pt`. A latest checkpoint that is
missing, truncated or corrupt (a disk that filled up, a copy cut short) falls back to the previous one with
a warning: the run repeats the steps in between and continues exactly.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file."""


def rng_state() -> Dict[str, Any]:
    """This process's random generators: torch's CPU one, CUDA's (where a device is in use), numpy, python."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state().cpu()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())  # the generator state is a CPU ByteTensor
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def rank_rng_state(saved: Any, rank: int) -> Optional[Dict[str, Any]]:
    """Rank `rank`'s generators from a checkpoint's "rng" entry: a list with one state per rank, or (written
    before ranks had states of their own) one state, which was rank 0's. None if the checkpoint has none."""
    states: List[Dict[str, Any]] = saved if isinstance(saved, list) else [saved]
    return states[rank] if rank < len(states) else None


def save_checkpoint(state: Dict[str, Any], path: os.PathLike | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if path.is_file():
            os.replace(path, previous_of(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def previous_of(path: Path) -> Path:
    return path.with_name(PREVIOUS_NAME) if path.name == CHECKPOINT_NAME else path.with_name(path.name + ".prev")


def has_checkpoint(path: os.PathLike | str) -> bool:
    path = Path(path)
    return path.is_file() or previous_of(path).is_file()


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path: Path, device: torch.device) -> Dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({' '.join(str(e).split())[:300]})") from None
    if not isinstance(ck, dict) or "state" not in ck:
        raise CheckpointError(f"{path}: unreadable checkpoint (not a training checkpoint)")
    return ck


def load_checkpoint(
    path: os.PathLike | str, device: torch.device = torch.device("cpu"), log: logging.Logger = logger
) -> Dict[str, Any]:
    """The latest checkpoint at `path`, or the previous one (with a warning to `log`) when the latest is
    unreadable."""
    path = Path(path)
    try:
        return _read(path, device)
    except CheckpointError as latest:
        prev = previous_of(path)
        if not prev.is_file():
            raise
        try:
            ck = _read(prev, device)
        except CheckpointError as older:
            raise CheckpointError(f"{latest}; the previous one is unusable too: {older}") from None
        log.warning(
            "%s; resuming from the previous checkpoint %s (step %s) instead", latest, prev, ck["state"].get("step")
        )
        return ck
