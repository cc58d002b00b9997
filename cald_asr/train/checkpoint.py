"""Training checkpoints: everything needed to continue a run exactly, written atomically.

Saved with torch.save and read with torch.load(weights_only=True): tensors, numbers, strings and
containers only, so reading a checkpoint never executes code. A kill at any moment leaves the previous
checkpoint readable (write to a temporary file in the same directory, fsync, rename).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file."""


def rng_state() -> Dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos,
                                                      has_gauss, gauss],
            "python": random.getstate()}


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(state: Dict[str, Any], path: os.PathLike | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: os.PathLike | str, device: torch.device = torch.device("cpu")) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
        ck["rng"]["torch"] = ck["rng"]["torch"].cpu()  # the generator state is a CPU ByteTensor
        return ck
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from None
