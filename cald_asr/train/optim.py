"""AdamW without weight decay on biases and norms, and the learning-rate schedules."""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Callable, Dict, Iterable, Optional

import torch
from torch import nn

from cald_asr.registry import Registry

NO_DECAY_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.Embedding)


def param_groups(
    model: nn.Module, weight_decay: float, lr: Optional[float] = None, lr_scale: Optional[Dict[str, float]] = None
) -> Iterable[Dict[str, Any]]:
    """Biases, norm weights, embeddings and 1-element parameters (SSM A/D/dt terms are vectors: decayed
    like weights would shrink their dynamics) go without weight decay.

    lr_scale maps parameter-name patterns (fnmatch, e.g. "*.E.weight") to a multiplier of lr, the first
    matching pattern winning. What it is for: Adam moves every parameter by about lr per step, so a new
    parameter whose entries are of order 1 (Linformer's E and F) changes ~50x slower, relatively, than
    the kept weights around it (of order 0.02), and barely leaves its random start in a short run."""
    lr_scale = dict(lr_scale or {})
    if lr_scale and lr is None:
        raise ValueError("lr_scale needs the base lr")
    names = {id(p): n for n, p in model.named_parameters()}
    groups: Dict[tuple, list] = {}
    used, seen = set(), set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            no_decay = (
                isinstance(module, NO_DECAY_TYPES)
                or name.endswith("bias")
                or p.ndim < 2
                or "norm" in type(module).__name__.lower()
            )
            scale = 1.0
            for pattern, factor in lr_scale.items():
                if fnmatch.fnmatchcase(names.get(id(p), name), pattern):
                    scale = float(factor)
                    used.add(pattern)
                    break
            groups.setdefault((no_decay, scale), []).append(p)
    unused = sorted(set(lr_scale) - used)
    if unused:
        raise ValueError(
            f"lr_scale patterns match no parameter: {unused} "
            f"(parameter names look like {next(iter(names.values()), '?')!r})"
        )
    out = []
    for (no_decay, scale), params in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        g = {"params": params, "weight_decay": 0.0 if no_decay else weight_decay}
        if scale != 1.0:
            g["lr"] = lr * scale
        out.append(g)
    return out


def adamw(model: nn.Module, conf: Dict[str, Any]) -> torch.optim.Optimizer:
    conf = dict(conf)
    wd = float(conf.pop("weight_decay", 0.0))
    lr_scale = conf.pop("lr_scale", None)
    # YAML 1.1 leaves "1e-3" a string: numbers are coerced here rather than failing inside torch
    kwargs = {
        k: (tuple(float(x) for x in v) if isinstance(v, list) else float(v) if k in ("lr", "eps") else v)
        for k, v in conf.items()
    }
    return torch.optim.AdamW(param_groups(model, wd, kwargs.get("lr"), lr_scale), **kwargs)


# optim: name -> (model, optim_conf) -> optimizer
OPTIMIZERS: Registry[Callable[[nn.Module, Dict[str, Any]], torch.optim.Optimizer]] = Registry(
    "optim",
    {
        "adamw": adamw,
    },
)


def build_optimizer(model: nn.Module, name: str, conf: Dict[str, Any]) -> torch.optim.Optimizer:
    return OPTIMIZERS.lookup(name)(model, conf)


def constant(step: int, conf: Dict[str, Any], max_steps: int) -> float:
    warmup = int(conf.get("warmup_steps", 0))
    return min(1.0, (step + 1) / warmup) if warmup else 1.0


def warmuplr(step: int, conf: Dict[str, Any], max_steps: int) -> float:
    """ESPnet's Noam-style warm-up then inverse square root."""
    w = max(int(conf.get("warmup_steps", 0)), 1)
    return w**0.5 * min((step + 1) ** -0.5, (step + 1) * w**-1.5)


def warmup_exp(step: int, conf: Dict[str, Any], max_steps: int) -> float:
    """The paper's: linear warm-up, then exponential decay to final_lr_ratio of the base lr."""
    warmup = int(conf.get("warmup_steps", 0))
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(int(conf.get("decay_steps") or (max_steps - warmup)), 1)
    final = float(conf.get("final_lr_ratio", 0.005))
    return math.exp(math.log(final) * min(step - warmup, decay_steps) / decay_steps)


# scheduler: name -> (0-based step, scheduler_conf, max_steps) -> multiplier of the base lr
SCHEDULERS: Registry[Callable[[int, Dict[str, Any], int], float]] = Registry(
    "scheduler",
    {
        "constant": constant,
        "warmuplr": warmuplr,
        "warmup_exp": warmup_exp,
    },
)


def lr_factor(step: int, name: str, conf: Dict[str, Any], max_steps: int) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based)."""
    return SCHEDULERS.lookup(name)(step, {**conf, "warmup_steps": warmup_steps(conf, max_steps)}, max_steps)


def warmup_steps(conf: Dict[str, Any], max_steps: int) -> int:
    """scheduler_conf.warmup_steps in steps: a number of steps, or below 1 a fraction of max_steps (0.1: the
    first tenth), so that a shortened run (--max_steps) keeps its shape."""
    w = conf.get("warmup_steps", 0) or 0
    return int(round(float(w) * max_steps)) if 0 < float(w) < 1 else int(w)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, conf: Dict[str, Any], max_steps: int):
    factor = SCHEDULERS.lookup(name)  # validated now, not at the first step
    conf = {**conf, "warmup_steps": warmup_steps(conf, max_steps)}
    factor(0, conf, max_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, conf, max_steps))
