"""The training loop shared by the Std. run (stage 5) and CALD (stage 6), for every task, in icefall's style:
a few plain functions (compute_loss, optimizer_step, log_progress, validate_run, checkpoint_run, train).

What differs between tasks (the loss, the dev metric, what is logged and summarised) is the Task's
(cald_asr/tasks/): the loop calls it and never asks which task it trains. `best/` is the checkpoint with
the lowest dev error (WER, or 100 - accuracy).

Loss normalisation. An optimiser step covers `accum_grad` global batches, each split among the ranks. Its
loss is  sum(task loss) / N_task  +  alpha_layer * sum_frames(L_layer) / N_frames
+ alpha_logits * sum(L_logits) / N_logits, with the counts taken over the whole step (all micro-batches,
all ranks) before anything runs, so the weights mean the same whatever the batch size, accumulation or
number of processes, and 2 processes give the gradient of 1 process on the same global batch. Frames are
encoder frames for speech and tokens for text; the task says what N_task and N_logits count (utterances
for CTC and for a classifier, whose logits are one distribution per utterance).
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from cald_asr.data.augment import step_lengths
from cald_asr.data.collate import to_device
from cald_asr.data.progress import is_terminal, progress_bar
from cald_asr.data.sampler import LengthBucketBatchSampler
from cald_asr.distill.guides import Guide, model_inputs
from cald_asr.distill.losses import layer_loss_sum, logits_kl_sum
from cald_asr.models.model_file import save_model
from cald_asr.precision import autocast, check_amp, grad_scaler, run_dtype
from cald_asr.tasks import StepNorm, Task, task_for
from cald_asr.train.averaging import keep_if_among_best, write_average
from cald_asr.train.checkpoint import (
    CHECKPOINT_NAME,
    has_checkpoint,
    load_checkpoint,
    rank_rng_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cald_asr.train.config import ConfigError
from cald_asr.train.distributed import DistInfo, agree_min, all_true, barrier, gather_objects, shard
from cald_asr.train.grad_checkpoint import enable_grad_checkpoint
from cald_asr.train.loader import BatchLoader, pin_memory_default
from cald_asr.train.oom import OOM_ERRORS, BatchOutOfMemory, describe_batches, release_memory
from cald_asr.train.optim import build_optimizer, build_scheduler, warmup_steps
from cald_asr.train.options import DEFAULTS, OPTION_SPECS, mixer_conf_spec
from cald_asr.train.position_limit import apply_position_limit
from cald_asr.train.provenance import DONE_NAME, check_resumable, write_done
from cald_asr.train.report import Scalars, get_logger

__all__ = [
    "DEFAULTS",
    "OPTION_SPECS",
    "StepNorm",
    "compute_loss",
    "mixer_conf_spec",
    "rank_seed",
    "set_seed",
    "train",
    "validate",
]


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """Each rank draws its own SpecAugment and dropout masks (rank 0 keeps the run's seed, so one process
    trains as before); the batch sampler keeps the shared seed, so every rank sees the same global batches."""
    return int(seed) + int(rank)


def compute_loss(
    model: nn.Module,
    batch: Dict[str, Any],
    cfg: Dict[str, Any],
    guide: Optional[Guide],
    step: int,
    norm: StepNorm,
    weight: float = 1.0,
    task: Optional[Task] = None,
):
    """-> (loss to backpropagate, {term: summed value}) for one micro-batch."""
    task = task or task_for(model)
    out = model(*model_inputs(batch))
    tsum = task.loss(out, batch).sum()
    loss = tsum / task.loss_count(norm)
    stats = {task.loss_name: tsum.item() * weight}
    if guide is not None and guide.distils(step):
        teacher = guide.teacher_outputs(batch, step)
        lsum, _ = layer_loss_sum(out.hidden_states, teacher.hidden_states, out.out_lengths)
        loss = loss + cfg["alpha_layer"] * lsum / norm.n_frames
        stats["layer"] = lsum.item() * weight
        if cfg["alpha_logits"]:
            ksum, _ = logits_kl_sum(out.logits, teacher.logits, out.out_lengths, cfg["temperature"])
            loss = loss + cfg["alpha_logits"] * ksum / task.logits_count(norm)
            stats["logits"] = ksum.item() * weight
    # DistributedDataParallel averages gradients over ranks; the normalisation above is already global
    return loss * norm.world * weight, stats


def validate(model: nn.Module, dataset, batches: Sequence[Sequence[int]], tokenizer) -> Dict[str, float]:
    """The dev results of `model`'s task (ASR: loss and greedy-CTC WER; a classifier: loss, accuracy, macro-F1)."""
    return task_for(model, tokenizer).validate(model, dataset, batches)


def _frames(model: nn.Module, lengths: Sequence[int]) -> int:
    return int(model.output_lengths(torch.tensor(list(lengths), dtype=torch.long)).sum())


@dataclass
class Run:
    """Everything one training run works with, made by setup_run (icefall passes such a `params` around)."""

    cfg: Dict[str, Any]
    task: Task
    model: nn.Module
    ddp: nn.Module  # the model, wrapped in DistributedDataParallel when distributed
    guide: Optional[Guide]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: LengthBucketBatchSampler
    train_set: Any
    valid_set: Any
    valid_batches: List[List[int]]
    out_dir: Path
    model_fields: Dict[str, Any]
    inputs: Optional[Dict[str, Any]]
    info: DistInfo
    device: torch.device
    dtype: torch.dtype
    log: Any
    state: Dict[str, Any]
    history: Optional[List[Dict]] = None
    scalars: Optional[Scalars] = None
    scaler: Optional[torch.amp.GradScaler] = None  # fp16 loss scaling (amp: fp16); a pass-through otherwise
    loader: Optional[BatchLoader] = None  # this rank's collated shards, read in num_workers processes
    valid_loader: Optional[BatchLoader] = None  # the dev batches, read in num_workers processes too

    @property
    def best_key(self) -> str:
        return f"best_{self.task.metric}"


@dataclass
class Meter:
    """Sums of the logged terms since the last log line, and the rate's reference point."""

    sums: Dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.time)
    steps_at_t0: int = 0
    t_log: float = field(default_factory=time.time)  # the last log line: frames/s and data wait since then
    wait_s: float = 0.0  # time the step waited for its batches (read in the loop or by the loader's workers)

    def add(self, stats_step: List[Dict[str, float]], norm: StepNorm, gnorm: float) -> None:
        for s in stats_step:
            for k, v in s.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
        for k, v in (("utts", norm.n_utts), ("frames", norm.n_frames), ("gnorm", gnorm), ("steps", 1)):
            self.sums[k] = self.sums.get(k, 0) + v


def setup_run(cfg, model, task, train_set, valid_set, out_dir, model_fields, guide, info, device, inputs) -> Run:
    out_dir.mkdir(parents=True, exist_ok=True)
    log = get_logger(out_dir, info.is_main)
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    set_seed(rank_seed(cfg["seed"], info.rank))
    dtype = run_dtype(cfg["dtype"])
    try:
        check_amp(cfg["amp"], dtype)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    task.prepare(model, cfg, guide)
    if cfg["grad_checkpoint"]:
        trains = [model] + ([guide.teacher] if guide is not None and getattr(guide, "optimizer", None) else [])
        n = sum(enable_grad_checkpoint(m) for m in trains)
        log.info(f"grad_checkpoint: {n} encoder layer(s) recompute their activations in backward")
    limit = apply_position_limit(model, cfg["position_limit"], train_set.lengths)
    if limit is not None:
        log.info(f"positions clamped from frame {limit} on (position_limit: {cfg['position_limit']})")
        # the saved config must rebuild the clamped encoder
        model_fields = {
            **model_fields,
            "encoder_conf": {**model_fields.get("encoder_conf", {}), "position_limit": limit},
        }
    model.to(device, dtype).train()
    if guide is not None:
        guide.to(device, dtype)
    ddp = (
        nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if info.enabled
        else model
    )
    optimizer = build_optimizer(model, cfg["optim"], cfg["optim_conf"])
    scheduler = build_scheduler(optimizer, cfg["scheduler"], cfg["scheduler_conf"], cfg["max_steps"])
    check_schedule(cfg, task, log)
    caps = dict(max_batch_size=cfg["max_batch_size"], max_sq_per_batch=cfg["batch_sq_bins"])
    sampler = LengthBucketBatchSampler(train_set.lengths, cfg["batch_bins"], shuffle=True, seed=cfg["seed"], **caps)
    valid_batches = list(
        LengthBucketBatchSampler(valid_set.lengths, cfg["valid_batch_bins"] or cfg["batch_bins"], shuffle=False, **caps)
    )
    state = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "nonfinite_total": 0,
        "nonfinite_in_a_row": 0,
        f"best_{task.metric}": math.inf,
        "best_step": 0,
        "best_selection": [math.inf, math.inf],  # what best/ is the lowest of: see selection()
        "kept": [],  # average_checkpoints: [[selection, step], ...] of the models in valid_models/
    }
    return Run(
        cfg,
        task,
        model,
        ddp,
        guide,
        optimizer,
        scheduler,
        sampler,
        train_set,
        valid_set,
        valid_batches,
        out_dir,
        model_fields,
        inputs,
        info,
        device,
        dtype,
        log,
        state,
        scaler=grad_scaler(cfg["amp"], device),
        loader=BatchLoader(train_set, task.collate(train_set), cfg, pin_memory=pin_memory_default(device)),
        valid_loader=BatchLoader(valid_set, task.collate(valid_set), cfg, pin_memory=pin_memory_default(device)),
    )


def check_schedule(cfg: Dict[str, Any], task: Task, log) -> None:
    """Refuse a best_metric the task has no value of and a negative average_checkpoints; warn of a warm-up
    that takes most of a short run."""
    if cfg["best_metric"] not in (None, "loss", task.metric):
        raise ConfigError(f"best_metric {cfg['best_metric']!r}: this task selects best/ by {task.metric} or loss")
    if cfg["average_checkpoints"] < 0:
        raise ConfigError(f"average_checkpoints {cfg['average_checkpoints']}: give N > 0 models to average, or 0")
    warmup, steps = warmup_steps(cfg["scheduler_conf"], cfg["max_steps"]), cfg["max_steps"]
    if warmup > steps / 3:
        log.warning(
            f"the warm-up ({warmup} steps) is more than a third of the run ({steps} steps): the lr peaks late "
            "and hardly decays; give scheduler_conf.warmup_steps as a fraction of max_steps (e.g. 0.1) to "
            "scale it with --max_steps"
        )


def resume_run(run: Run) -> None:
    """Continue from the run's checkpoint, if it has one, refusing one written under other options or inputs."""
    path = run.out_dir / CHECKPOINT_NAME
    if not has_checkpoint(path):
        return
    ck = load_checkpoint(path, run.device, run.log)
    check_resumable(ck, run.cfg, run.inputs, path)
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.state.update(ck["state"])
    run.state.setdefault("kept", [])  # a checkpoint written before average_checkpoints
    if "best_selection" not in ck["state"]:  # written before best_metric: its best/ was chosen by the metric alone
        run.state["best_selection"] = [run.state[run.best_key], math.inf]
    run.history = ck["history"]
    if ck.get("scaler"):  # fp16's loss scale continues where it was
        run.scaler.load_state_dict(ck["scaler"])
    if run.guide is not None:
        run.guide.load_state_dict(ck["guide"])
    restore_rng(ck, run.info, run.log)
    st = run.state
    run.log.info(f"resumed from {path} at step {st['step']} (epoch {st['epoch']}, batch {st['batch_in_epoch']})")


def restore_rng(ck: Dict[str, Any], info: DistInfo, log) -> None:
    """Each rank continues its own random draws; a rank the checkpoint has no state for (more processes
    than wrote it) keeps its fresh seed, and the run is then not bitwise the one it continues."""
    saved = rank_rng_state(ck["rng"], info.rank)
    if saved is not None:
        set_rng_state(saved)
    written_by = ck.get("world_size", 1)
    if written_by != info.world_size and info.is_main:
        log.warning(
            f"the checkpoint was written by {written_by} process(es), this run has {info.world_size}: "
            "it continues with the same global batches, but its random draws are not bitwise the same"
        )


def checkpoint_run(run: Run) -> None:
    rngs = gather_objects(rng_state(), run.info)  # every rank's generators, so each resumes its own draws
    if run.info.is_main:
        save_checkpoint(
            {
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "state": dict(run.state),
                "rng": rngs,
                "world_size": run.info.world_size,
                "guide": run.guide.state_dict() if run.guide is not None else {},
                "scaler": run.scaler.state_dict(),
                "history": run.scalars.history,
                "config": run.cfg,
                "inputs": run.inputs,
            },
            run.out_dir / CHECKPOINT_NAME,
        )


def save_model_of(run: Run, where: Path) -> None:
    save_model(run.model, {**run.model_fields, "trained_steps": run.state["step"]}, where)


def selection(run: Run, res: Dict[str, float]) -> List[float]:
    """What best/ is the lowest of: the dev metric (best_metric: the task's own, e.g. WER, or the dev loss),
    ties broken by the dev loss (an all-empty-output model and a better one can share a WER of 100 %)."""
    return [res[run.cfg["best_metric"] or run.task.metric], res["loss"]]


def describe_best(run: Run) -> str:
    st = run.state
    if run.cfg["best_metric"] == "loss":
        return f"dev loss {st['best_selection'][0]:.3f}"
    return run.task.describe_best(st[run.best_key])


def validate_run(run: Run) -> None:
    """Dev results into the log and TensorBoard; a new lowest selection (see `selection`) becomes best/."""
    if run.info.is_main:
        st, task = run.state, run.task
        res = task.validate(run.model, run.valid_set, run.valid_loader.epoch(run.valid_batches, 0))
        run.scalars.add(st["step"], task.scalars(res))
        for warning in task.warnings(res):
            run.log.warning(f"step {st['step']}: {warning}")
        if run.cfg["average_checkpoints"]:
            st["kept"] = keep_if_among_best(
                st["kept"],
                selection(run, res),
                st["step"],
                run.cfg["average_checkpoints"],
                run.out_dir,
                lambda where: save_model_of(run, where),
            )
        better = selection(run, res) < st["best_selection"]
        if better:
            st["best_selection"], st[run.best_key], st["best_step"] = selection(run, res), res[task.metric], st["step"]
            task.on_better(res, st)
            save_model_of(run, run.out_dir / "best")
        run.log.info(
            f"step {st['step']}: {task.describe(res)}"
            + (" (best so far)" if better else f" (best {describe_best(run)} at {st['best_step']})")
        )
        run.scalars.plot()
    barrier(run.info)


def skip_step(run: Run) -> None:
    """A non-finite loss or gradient: the batch is skipped and counted; too many in a row stop the run."""
    st = run.state
    run.optimizer.zero_grad(set_to_none=True)
    st["nonfinite_total"] += 1
    st["nonfinite_in_a_row"] += 1
    run.log.warning(
        f"step {st['step']}: non-finite loss or gradient, batch skipped "
        f"({st['nonfinite_in_a_row']} in a row, {st['nonfinite_total']} in all)"
    )
    if st["nonfinite_in_a_row"] >= run.cfg["max_nonfinite_in_a_row"]:
        checkpoint_run(run)
        raise FloatingPointError(
            f"{st['nonfinite_in_a_row']} batches in a row had a non-finite loss or gradient; stopping "
            f"at step {st['step']}. Lower the learning rate or check the data (see {run.out_dir}/train.log)"
        )


def skip_overflow(run: Run) -> None:
    """fp16: the scaled gradients overflowed. Expected while the loss scale finds its level, so it is not a
    non-finite batch: the step is skipped, the scale halved (GradScaler.update), the skip counted and logged."""
    st = run.state
    old = run.scaler.get_scale()
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    st["overflow_skips"] = st.get("overflow_skips", 0) + 1
    run.log.warning(
        f"step {st['step']}: fp16 gradients overflowed, batch skipped; loss scale {old:g} -> "
        f"{run.scaler.get_scale():g} ({st['overflow_skips']} overflow skip(s) in all)"
    )


def rank_shard(b: List[int], info: DistInfo) -> List[int]:
    """This rank's part of global batch b; a rank left without utterances reads b's first, which it then
    weighs 0 (it still joins the gradient all-reduce)."""
    return shard(b, info) or b[:1]


# what a micro-batch's forward pass came to on every rank (the lowest wins: distributed.agree_min)
OUT_OF_MEMORY, NONFINITE, FITS = 0, 1, 2


def forward_pass(run: Run, batch, norm: StepNorm, weight: float):
    """-> (loss, stats, status agreed by every rank) of one micro-batch's forward pass."""
    loss, stats, status = None, {}, FITS
    try:
        with autocast(run.cfg["amp"], run.device):
            loss, stats = compute_loss(run.ddp, batch, run.cfg, run.guide, run.state["step"], norm, weight, run.task)
        status = FITS if bool(torch.isfinite(loss)) else NONFINITE
    except OOM_ERRORS:
        loss, status = None, OUT_OF_MEMORY  # the traceback (and the tensors it holds) is dropped here
    return loss, stats, agree_min(status, run.info)


def backward_pass(run: Run, loss, group: List[List[int]]) -> int:
    """Backpropagate; out of memory in one process is OUT_OF_MEMORY, under DDP an error (see oom.py)."""
    try:
        run.scaler.scale(loss).backward()
        return FITS
    except OOM_ERRORS:
        if not run.info.enabled:
            return OUT_OF_MEMORY  # the traceback (and the tensors it holds) is dropped here
    # under DDP the other ranks may already wait in the gradient all-reduce: this rank cannot skip alone
    release_memory(run.optimizer, run.device)
    where = f"rank {run.info.rank}, step {run.state['step']}: out of memory in backward on a batch of "
    raise BatchOutOfMemory(where + describe_batches(run.train_set, group, run.cfg))


def skip_oom(run: Run, group: List[List[int]]) -> None:
    """A batch out of memory on some rank: skipped and counted (skip_oom_batches), else an error naming it."""
    st = run.state
    release_memory(run.optimizer, run.device)
    what = f"step {st['step']}: out of memory on a batch of " + describe_batches(run.train_set, group, run.cfg)
    if not run.cfg["skip_oom_batches"]:
        raise BatchOutOfMemory(what)
    st["oom_skips"] = st.get("oom_skips", 0) + 1
    run.log.warning(f"{what}; skipped (skip_oom_batches: true; {st['oom_skips']} out-of-memory skip(s) in all)")


def optimizer_step(run: Run, group: List[List[int]], loaded, meter: Meter) -> bool:
    """One optimiser step over the global batches of `group`, whose shards on this rank come next from
    `loaded` (the epoch's BatchLoader iterator), guarded against non-finite losses and gradients on every
    rank; False if the step was skipped."""
    cfg, info, st = run.cfg, run.info, run.state
    norm = StepNorm(
        sum(len(b) for b in group),
        sum(_frames(run.model, step_lengths(run.train_set, b)) for b in group),
        info.world_size,
    )
    t_wait = time.time()
    micro = [(to_device(next(loaded), run.device, run.dtype), 1.0 if shard(b, info) else 0.0) for b in group]
    meter.wait_s += time.time() - t_wait
    run.optimizer.zero_grad(set_to_none=True)
    status, stats_step = FITS, []
    for k, (batch, weight) in enumerate(micro):
        sync = k == len(micro) - 1 or not info.enabled
        with run.ddp.no_sync() if not sync else contextlib.nullcontext():
            loss, stats, status = forward_pass(run, batch, norm, weight)
            if status == FITS:
                status = backward_pass(run, loss, group)
            del loss
        if status != FITS:
            break
        stats_step.append(stats)
    if status == OUT_OF_MEMORY:
        skip_oom(run, group)
        return False
    ok = status == FITS
    if ok:
        run.scaler.unscale_(run.optimizer)
        gnorm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg["grad_clip"]))
        if not all_true(math.isfinite(gnorm), info) and run.scaler.is_enabled():
            skip_overflow(run)  # a finite loss whose scaled gradients overflowed fp16: the scale comes down
            return False
        ok = all_true(math.isfinite(gnorm), info)
    if not ok:
        skip_step(run)
        return False
    st["nonfinite_in_a_row"] = 0
    run.scaler.step(run.optimizer)  # the optimizer's step (the gradients are unscaled and finite)
    run.scaler.update()
    run.scheduler.step()
    st["step"] += 1
    if run.guide is not None:
        run.guide.after_step(
            [(batch, weight * norm.world / run.task.loss_count(norm)) for batch, weight in micro], st["step"]
        )
    meter.add(stats_step, norm, gnorm)
    return True


def log_progress(run: Run, meter: Meter) -> None:
    """Per-rank sums of this rank's shards; rank 0 logs its share scaled to the global count."""
    acc, task, st, max_steps, scale = meter.sums, run.task, run.state, run.cfg["max_steps"], run.info.world_size
    counts = StepNorm(acc["utts"], acc["frames"], scale)  # global counts: each step's norm counts every rank
    vals = {
        f"train/{task.loss_name}": acc.get(task.loss_name, 0.0) * scale / task.loss_count(counts),
        "train/lr": run.scheduler.get_last_lr()[0],
        "train/grad_norm": acc["gnorm"] / acc["steps"],
    }
    if acc.get("layer"):
        vals["train/layer"] = acc["layer"] * scale / counts.n_frames
    if acc.get("logits"):
        vals["train/logits"] = acc["logits"] * scale / task.logits_count(counts)
    if run.info.is_main:
        run.scalars.add(st["step"], vals)
        now = time.time()
        rate = (st["step"] - meter.steps_at_t0) / max(now - meter.t0, 1e-9)
        eta = (max_steps - st["step"]) / max(rate, 1e-9)
        interval = max(now - meter.t_log, 1e-9)
        run.log.info(
            f"step {st['step']}/{max_steps} epoch {st['epoch']} "
            + " ".join(f"{k[6:]} {v:.4g}" for k, v in vals.items())
            + f" | {rate:.2f} steps/s, {acc['frames'] / interval:.0f} frames/s, "
            + f"data wait {100 * meter.wait_s / interval:.1f} %, ETA {eta / 60:.1f} min"
            + gpu_memory(run.device)
        )
    meter.sums, meter.wait_s, meter.t_log = {}, 0.0, time.time()


def gpu_memory(device: torch.device) -> str:
    """The log line's CUDA memory peak (what torch's allocator held at most since the run began)."""
    if device.type != "cuda":
        return ""
    return f", GPU memory peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"


def after_step(run: Run, meter: Meter) -> None:
    """What comes due after optimiser step N: a log line, a snapshot, a validation, a checkpoint."""
    cfg, step = run.cfg, run.state["step"]
    if step % cfg["log_every"] == 0 or step == cfg["max_steps"]:
        log_progress(run, meter)
    if cfg["snapshot_every"] and step % cfg["snapshot_every"] == 0 and run.info.is_main:
        save_model_of(run, run.out_dir / "snapshots" / f"step_{step}")
    if step % cfg["valid_every"] == 0 and step < cfg["max_steps"]:
        validate_run(run)
    if step % cfg["checkpoint_every"] == 0:
        checkpoint_run(run)


def train_epochs(run: Run) -> bool:
    """Steps until max_steps, epoch after epoch (resuming mid-epoch at the saved batch); True if stop_after
    ended the loop early, as a kill would (after that step's checkpoint, if one was due)."""
    cfg, st = run.cfg, run.state
    meter = Meter(steps_at_t0=st["step"])
    # off a terminal the log lines (every log_every steps, with steps/s and ETA) are the progress: no bar
    bar = progress_bar(
        total=cfg["max_steps"],
        initial=st["step"],
        disable=not run.info.is_main or not is_terminal(sys.stderr),
        desc=run.out_dir.name,
        dynamic_ncols=True,
        mininterval=5,
    )
    stopped = False
    while st["step"] < cfg["max_steps"] and not stopped:
        run.sampler.set_epoch(st["epoch"])
        if hasattr(run.train_set, "set_epoch"):  # augmentation draws per (epoch, utterance): step_lengths
            run.train_set.set_epoch(st["epoch"])
        batches = list(run.sampler)
        rest = batches[st["batch_in_epoch"] :]  # a resumed run continues at the batch it stopped at
        loaded = run.loader.epoch([rank_shard(b, run.info) for b in rest], st["epoch"])
        while st["batch_in_epoch"] < len(batches) and st["step"] < cfg["max_steps"] and not stopped:
            group = batches[st["batch_in_epoch"] : st["batch_in_epoch"] + cfg["accum_grad"]]
            st["batch_in_epoch"] += len(group)
            if optimizer_step(run, group, loaded, meter):
                bar.update(1)
                after_step(run, meter)
                stopped = cfg["stop_after"] is not None and st["step"] >= cfg["stop_after"]
        if st["batch_in_epoch"] >= len(batches):
            st["epoch"] += 1
            st["batch_in_epoch"] = 0
    bar.close()
    return stopped


def average_models(run: Run) -> None:
    """average_checkpoints: N -> ave_N/, the mean of the N best validations' models (train/averaging.py)."""
    n = run.cfg["average_checkpoints"]
    if not n:
        return
    names = [run.cfg["best_metric"] or run.task.metric, "loss"]
    out = write_average(run.state["kept"], n, run.model, run.model_fields, run.out_dir, names)
    steps = ", ".join(str(step) for _, step in run.state["kept"])
    short = f" (only {len(run.state['kept'])} validation(s) in the run)" if len(run.state["kept"]) < n else ""
    run.log.info(f"{out}: the mean of the models of steps {steps}{short}")


def finish_run(run: Run) -> None:
    validate_run(run)
    checkpoint_run(run)
    if run.info.is_main:
        st = run.state
        save_model_of(run, run.out_dir / "final")
        average_models(run)
        write_done(run.out_dir, st["step"], run.cfg, run.inputs)
        png = run.scalars.plot()
        teacher_skips = getattr(run.guide, "skipped", None)
        teacher_note = "" if teacher_skips is None else f", {teacher_skips} teacher update(s)"
        run.log.info(
            f"done: {st['step']} steps, {run.task.summary(st)} at step {st['best_step']}; "
            f"{st['nonfinite_total']} batch(es){teacher_note} skipped as non-finite"
            + (f", {st['oom_skips']} as out of memory" if st.get("oom_skips") else "")
            + f"; curves: {png}"
        )


def train(
    cfg: Dict[str, Any],
    model: nn.Module,
    train_set,
    valid_set,
    tokenizer,
    out_dir: Path,
    model_fields: Dict[str, Any],
    guide: Optional[Guide] = None,
    resume: bool = False,
    info: DistInfo = DistInfo(),
    device: torch.device = torch.device("cpu"),
    inputs: Optional[Dict[str, Any]] = None,
    task: Optional[Task] = None,
) -> Dict[str, Any]:
    """Train `model` in place for its task (task_for(model, tokenizer) unless given; `tokenizer` decodes ASR
    dev hypotheses). Writes under out_dir: checkpoint.pt, best/ and final/ model dirs, snapshots/step_<N>/,
    train.log, tensorboard/, loss_curves.png, and .done at the end. `inputs` (fingerprints of the start model,
    teacher and data) is kept with the checkpoints and .done: a resume under other inputs is refused.
    Returns the final state summary."""
    run = setup_run(
        cfg,
        model,
        task or task_for(model, tokenizer, cfg.get("task")),
        train_set,
        valid_set,
        Path(out_dir),
        model_fields,
        guide,
        info,
        device,
        inputs,
    )
    if resume:
        resume_run(run)
    if info.is_main:
        (run.out_dir / DONE_NAME).unlink(missing_ok=True)  # a run under way is not finished, whatever ran before
    run.scalars = Scalars(run.out_dir, info.is_main, run.history)
    try:
        if train_epochs(run):
            run.log.info(f"stopped after step {run.state['step']} (stop_after); resume with --resume")
        else:
            finish_run(run)
    finally:
        run.scalars.close()
    return dict(run.state)
