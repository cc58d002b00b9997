"""Checkpoint averaging, as ESPnet's `valid.acc.ave`: `average_checkpoints: N` keeps the model of each of the N
best validations (by the same selection as best/: the dev metric, ties broken by the dev loss) in
`<run>/valid_models/step_<k>/`, and at the end of the run writes their parameter mean to `<run>/ave_<N>/`, a
model dir like best/ (stage 7 decodes it with `--inference_model ave_<N>`), with `averaged.yaml` naming the
steps and dev results it averages. A run with fewer validations than N averages what it has, and says so.

Floating tensors are averaged in float64 and cast back to their dtype; integer tensors (counters such as
BatchNorm's num_batches_tracked) get the floor of their mean, as ESPnet's average_nbest_models does."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Dict, List, Sequence

import torch
import yaml
from safetensors.torch import load_file, load_model, save_file

from cald_asr.models.model_file import WEIGHTS_NAME, save_model

KEPT_DIR = "valid_models"
INFO_NAME = "averaged.yaml"


def average_state_dicts(states: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same keys, shapes and dtypes."""
    if not states:
        raise ValueError("no state dicts to average")
    keys = set(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != keys:
            raise ValueError(f"state dict {i} has other keys than the first: {sorted(keys ^ set(s))[:5]}")
    out = {}
    for k, first in states[0].items():
        if first.is_floating_point() or first.is_complex():
            total = sum(s[k].to(torch.complex128 if first.is_complex() else torch.float64) for s in states)
            out[k] = (total / len(states)).to(first.dtype)
        else:
            out[k] = sum(s[k].long() for s in states).div(len(states), rounding_mode="floor").to(first.dtype)
    return out


def kept_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / KEPT_DIR / f"step_{step}"


def keep_if_among_best(kept: List[list], selection: List[float], step: int, n: int, run_dir: Path, save) -> List[list]:
    """`kept`: [[selection, step], ...], the n best so far, lowest first. If this validation is among the n
    best, `save(dir)` writes its model to valid_models/step_<step>/ and the one it displaces is removed.
    Returns the new list (it goes into the run's state, so a resumed run keeps counting)."""
    ranked = sorted([*kept, [list(selection), step]], key=lambda e: (e[0], e[1]))
    new, dropped = ranked[:n], ranked[n:]
    if any(step == s for _, s in new):
        save(kept_dir(run_dir, step))
    for _, s in dropped:
        shutil.rmtree(kept_dir(run_dir, s), ignore_errors=True)
    return new


def write_average(kept: List[list], n: int, model: torch.nn.Module, fields: Dict, run_dir: Path, names) -> Path:
    """ave_<n>/ of the kept models' mean (model: the architecture to load it into, not changed); `names`: the
    selection's parts, e.g. ["wer", "loss"], for averaged.yaml."""
    run_dir = Path(run_dir)
    dirs = [kept_dir(run_dir, s) for _, s in kept]
    for d in (run_dir / KEPT_DIR).glob("step_*"):  # one saved by a validation a kill then undid (resumed before it)
        if d not in dirs:
            shutil.rmtree(d, ignore_errors=True)
    avg = average_state_dicts([load_file(str(d / WEIGHTS_NAME)) for d in dirs])
    tmp = run_dir / f".average{n}.safetensors"
    save_file(avg, str(tmp))
    shell = copy.deepcopy(model)
    try:
        load_model(shell, str(tmp))  # shared (tied) tensors are stored once: safetensors restores the ties
    finally:
        tmp.unlink(missing_ok=True)
    out = save_model(shell, fields, run_dir / f"ave_{n}")
    info = {
        "average_checkpoints": n,
        "averaged": len(kept),
        "models": [{"step": s, **dict(zip(names, sel))} for sel, s in kept],
    }
    (out / INFO_NAME).write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")
    return out
