"""The training loop shared by the Std. run (stage 5) and CALD (stage 6), for every task: plain functions
in icefall's style: compute_loss, validate, train.

The task is a property of the model, not a second loop (`task_of`): an ASRCTCModel is trained with CTC and
validated by greedy-CTC WER; a TextClassifier with cross-entropy, validated by accuracy and macro-F1. Both
read their inputs through `model_inputs(batch)` (speech or token ids, with lengths), and `best/` is the
checkpoint with the lowest dev error (WER, or 100 - accuracy).

Loss normalisation. An optimiser step covers `accum_grad` global batches, each split among the ranks. Its
loss is  sum_utts(task loss) / N_utts  +  alpha_layer * sum_frames(L_layer) / N_frames
+ alpha_logits * sum_frames(L_logits) / N_frames, with N counted over the whole step (all micro-batches,
all ranks) before anything runs, so the weights mean the same whatever the batch size, accumulation or
number of processes, and 2 processes give the gradient of 1 process on the same global batch. Frames are
encoder frames for speech and tokens for text; a classifier's logits are one distribution per utterance,
so its L_logits is summed over utterances and divided by N_utts.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import jiwer
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cald_asr.data.collate import pad_collate
from cald_asr.data.sampler import LengthBucketBatchSampler
from cald_asr.decode.ctc_greedy import ctc_greedy
from cald_asr.distill.guides import STRATEGIES, Guide, model_inputs
from cald_asr.distill.losses import layer_loss_sum, logits_kl_sum
from cald_asr.models.asr_ctc import ASRCTCModel
from cald_asr.models.model_file import save_model
from cald_asr.models.text_classifier import TextClassifier
from cald_asr.scoring.accuracy import accuracy, macro_f1
from cald_asr.mixers.registry import MIXERS
from cald_asr.precision import DTYPES, run_dtype
from cald_asr.train.checkpoint import (CHECKPOINT_NAME, PREVIOUS_NAME, CheckpointError, has_checkpoint,
                                       load_checkpoint, rank_rng_state, rng_state, save_checkpoint, set_rng_state)
from cald_asr.train.config import Fixed, Mapping, OptionSpec, Spec, keyword_specs, spec_of
from cald_asr.train.distributed import DistInfo, all_true, barrier, gather_objects, shard
from cald_asr.train.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from cald_asr.train.report import Scalars, get_logger
from cald_asr.train.specaug import SpecAugment

DEFAULTS: Dict[str, Any] = {
    "seed": 0,                   # rank r of a multi-process run seeds its augmentation and dropout with seed + r
    "dtype": "float32",          # float64: the whole run in double precision (equality checks, see precision.py)
    "max_steps": 1000,
    "batch_bins": 1_600_000,     # cap on padded input size per global batch: batch size x longest input
    "max_batch_size": 64,
    "max_unk_share": 0.01,       # ASR: transcript symbols outside the token list above this share: an error
    "accum_grad": 1,
    "optim": "adamw",
    # lr_scale: {name pattern: lr multiplier}, e.g. {"*.E.weight": 50} (cald_asr/train/optim.py)
    "optim_conf": {"lr": 1.0e-3, "betas": [0.9, 0.98], "eps": 1.0e-8, "weight_decay": 0.0, "lr_scale": {}},
    "scheduler": "warmup_exp",
    "scheduler_conf": {"warmup_steps": 100, "final_lr_ratio": 0.01, "decay_steps": None},
    "grad_clip": 1.0,
    "specaug": False,
    "specaug_conf": {},
    "valid_every": 200,
    "valid_batch_bins": None,    # default: batch_bins
    "snapshot_every": 0,         # > 0: save snapshots/step_<N>/ (waypoints for a later CALD run)
    "checkpoint_every": 100,
    "log_every": 10,
    "max_nonfinite_in_a_row": 10,
    "stop_after": None,          # leave the loop after this many steps as if killed (resume tests)
    "num_threads": 0,            # torch threads; 0 keeps torch's default
    "position_limit": None,      # recurrent students: clamp absolute positions at N frames, or "auto" (see below)
    # CALD (stage 6); strategy null = plain task training
    "strategy": None,
    "alpha_layer": 15.0,
    "alpha_logits": 0.0,
    "temperature": 2.0,
    "teacher_mode": "eval",
    "cache_teacher": False,
    "switch_off_step": None,     # hybrid
    "teacher_lr": None,          # trajectory (default: the student's lr)
    "update_every": 1,           # trajectory T_u
    "mixer": None,
    "mixer_conf": {},
}


# The type of every option (config.py checks files and overrides against them, at any depth); what a
# default does not say (None defaults, choices, fixed nested keys) is declared here.
OPTION_SPECS: Dict[str, OptionSpec] = {
    **{k: spec_of(v) for k, v in DEFAULTS.items()},
    "dtype": Spec(choices=tuple(DTYPES)),
    "optim": Spec(choices=OPTIMIZERS),
    "optim_conf": Fixed({"lr": Spec((float,)), "betas": Spec((list,)), "eps": Spec((float,)),
                         "weight_decay": Spec((float,)), "lr_scale": Mapping(Spec((float,)))}),
    "scheduler": Spec(choices=SCHEDULERS),
    "scheduler_conf": Fixed({"warmup_steps": Spec((int,)), "final_lr_ratio": Spec((float,)),
                             "decay_steps": Spec((int,), optional=True)}),
    "specaug_conf": keyword_specs(SpecAugment),
    "valid_batch_bins": Spec((int,), optional=True),
    "max_unk_share": Spec((float,), optional=True),
    "stop_after": Spec((int,), optional=True),
    "position_limit": Spec((int,), choices=("auto",), optional=True),
    "strategy": Spec(choices=STRATEGIES, optional=True),
    "teacher_mode": Spec(choices=("eval", "train")),
    "switch_off_step": Spec((int, float), optional=True),
    "teacher_lr": Spec((float,), optional=True),
    "mixer": Spec(choices=tuple(MIXERS), optional=True),
    "mixer_conf": Spec((dict,)),  # the mixer's keyword arguments: see mixer_conf_spec
}


def mixer_conf_spec(mixer: str) -> Fixed:
    """mixer_conf's keys: the mixer's keyword arguments (a bidirectional mixer's are its direction's)."""
    cls = MIXERS[mixer]
    spec = keyword_specs(cls, skip=("d_model",))
    direction = getattr(cls, "direction", None)
    if direction is not None:
        spec = Fixed({**spec.keys, **keyword_specs(direction, skip=("d_model",)).keys})
    return spec


@dataclass
class StepNorm:
    n_utts: int
    n_frames: int
    world: int


@dataclass(frozen=True)
class Task:
    loss_name: str  # the task term in logs and stats
    metric: str     # the dev error that selects best/ (lower is better)


ASR = Task("ctc", "wer")
CLASSIFICATION = Task("ce", "err")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """Each rank draws its own SpecAugment and dropout masks (rank 0 keeps the run's seed, so one process
    trains as before); the batch sampler keeps the shared seed, so every rank sees the same global batches."""
    return int(seed) + int(rank)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def task_of(model: nn.Module) -> Task:
    return CLASSIFICATION if isinstance(unwrap(model), TextClassifier) else ASR


def task_loss(model: nn.Module, out, batch: Dict[str, Any]) -> torch.Tensor:
    """Per-utterance task loss (B,): CTC for ASR, cross-entropy for a classifier."""
    if task_of(model) is CLASSIFICATION:
        return TextClassifier.ce_loss(out, batch["labels"])
    return ASRCTCModel.ctc_loss(out, batch["text"], batch["text_lengths"])


def task_loss_sum(model: nn.Module, batch: Dict[str, Any]) -> torch.Tensor:
    """Summed task loss over the batch's utterances (the trajectory teacher's objective too)."""
    return task_loss(model, model(*model_inputs(batch)), batch).sum()


def compute_loss(model: nn.Module, batch: Dict[str, Any], cfg: Dict[str, Any], guide: Optional[Guide],
                 step: int, norm: StepNorm, weight: float = 1.0):
    """-> (loss to backpropagate, {term: summed value}) for one micro-batch."""
    out = model(*model_inputs(batch))
    task = task_of(model)
    tsum = task_loss(model, out, batch).sum()
    loss = tsum / norm.n_utts
    stats = {task.loss_name: tsum.item() * weight}
    if guide is not None and guide.distils(step):
        teacher = guide.teacher_outputs(batch, step)
        lsum, _ = layer_loss_sum(out.hidden_states, teacher.hidden_states, out.out_lengths)
        loss = loss + cfg["alpha_layer"] * lsum / norm.n_frames
        stats["layer"] = lsum.item() * weight
        if cfg["alpha_logits"]:
            ksum, _ = logits_kl_sum(out.logits, teacher.logits, out.out_lengths, cfg["temperature"])
            per_utt = out.logits.dim() == 2
            loss = loss + cfg["alpha_logits"] * ksum / (norm.n_utts if per_utt else norm.n_frames)
            stats["logits"] = ksum.item() * weight
    # DistributedDataParallel averages gradients over ranks; the normalisation above is already global
    return loss * norm.world * weight, stats


def collate_of(dataset) -> Callable[[Sequence[Dict]], Dict[str, Any]]:
    """A dataset may bring its own collate (text); speech datasets use pad_collate."""
    return getattr(dataset, "collate", pad_collate)


@torch.no_grad()
def validate(model: nn.Module, dataset, batches: Sequence[Sequence[int]], tokenizer) -> Dict[str, float]:
    """ASR: dev CTC loss per utterance and greedy-CTC WER (%); a classifier: see validate_classifier."""
    if task_of(model) is CLASSIFICATION:
        return validate_classifier(model, dataset, batches)
    model.eval()
    total, n, refs, hyps = 0.0, 0, [], []
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    for b in batches:
        batch = to_device(pad_collate([dataset[i] for i in b]), device, dtype)
        out = model(*model_inputs(batch))
        total += ASRCTCModel.ctc_loss(out, batch["text"], batch["text_lengths"]).sum().item()
        n += len(b)
        for utt, ids in zip(batch["utt_ids"], ctc_greedy(out.logits, out.out_lengths)):
            refs.append(dataset.texts[utt])
            hyps.append(tokenizer.decode(ids))
    model.train()
    return {"loss": total / max(n, 1), "wer": 100.0 * jiwer.wer(refs, hyps)}


@torch.no_grad()
def validate_classifier(model: nn.Module, dataset, batches: Sequence[Sequence[int]]) -> Dict[str, float]:
    """Dev cross-entropy per utterance, accuracy, macro-F1 and error (100 - accuracy), in %."""
    model.eval()
    total, refs, hyps = 0.0, [], []
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    collate = collate_of(dataset)
    for b in batches:
        batch = to_device(collate([dataset[i] for i in b]), device, dtype)
        out = model(*model_inputs(batch))
        total += TextClassifier.ce_loss(out, batch["labels"]).sum().item()
        refs += batch["labels"].tolist()
        hyps += out.logits.argmax(-1).tolist()
    model.train()
    acc = accuracy(refs, hyps)
    return {"loss": total / max(len(refs), 1), "acc": acc, "macro_f1": macro_f1(refs, hyps), "err": 100.0 - acc}


def to_device(batch: Dict[str, Any], device: torch.device, dtype: Optional[torch.dtype] = None) -> Dict[str, Any]:
    """Tensors to `device`; floating-point ones also to `dtype` when given (the run's dtype)."""
    def move(v):
        if dtype is not None and torch.is_floating_point(v):
            return v.to(device, dtype, non_blocking=True)
        return v.to(device, non_blocking=True)
    return {k: move(v) if torch.is_tensor(v) else v for k, v in batch.items()}


POSITION_LIMIT_QUANTILE = 0.99


def apply_position_limit(model: nn.Module, setting, lengths: Sequence[int]) -> Optional[int]:
    """Clamp the encoder's absolute positions for inputs longer than training ever shows it.

    A model fine-tuned on short utterances has only seen the first few hundred rows of a sinusoid
    table; a recurrent student decoding minutes in one pass meets rows it never saw, and its error
    grows with the length (FSDD test_long). The student reads order from its scans, so positions past
    the limit can all be the limit's row. "auto": the 99th percentile of the training set's encoder
    output lengths (positions beyond it are rare in training, so barely learnt). The limit goes into
    the encoder's config, so inference applies the same. Attention encoders are refused: positions
    are their only source of order."""
    if setting is None:
        return None
    from cald_asr.mixers import Mamba, Mamba2

    enc = getattr(model, "encoder", None)
    if enc is None or not hasattr(enc, "set_position_limit"):
        raise ValueError(f"position_limit: the encoder {type(enc).__name__} has no absolute position table to limit")
    if not any(isinstance(m, (Mamba, Mamba2)) for m in enc.modules()):
        raise ValueError("position_limit is for recurrent (Mamba/Mamba2) students: an attention or Linformer "
                         "encoder reads order from its positions alone")
    if setting == "auto":
        frames = model.output_lengths(torch.tensor(list(lengths), dtype=torch.long)).float()
        limit = max(1, int(torch.quantile(frames, POSITION_LIMIT_QUANTILE).ceil()))
    elif isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        limit = setting
    else:
        raise ValueError(f"position_limit must be null, 'auto' or a positive frame count, got {setting!r}")
    enc.set_position_limit(limit)
    return limit


def _frames(model: nn.Module, lengths: Sequence[int]) -> int:
    return int(model.output_lengths(torch.tensor(list(lengths), dtype=torch.long)).sum())


# Options that only change what is logged or how often: a resumed run may change them freely.
RESUME_FREE_KEYS = ("log_every", "valid_every", "checkpoint_every", "snapshot_every", "num_threads",
                    "valid_batch_bins", "stop_after", "max_nonfinite_in_a_row")


def run_differences(saved_cfg: Optional[Dict[str, Any]], cfg: Dict[str, Any],
                    saved_inputs: Optional[Dict[str, Any]], inputs: Optional[Dict[str, Any]]) -> List[str]:
    """What differs between the run that wrote a checkpoint (or finished) and this one, in anything that shapes
    training: the options (model, optimiser, schedule, data) and the inputs' fingerprints (start model,
    teacher, snapshots, data dirs). Parts the earlier run did not record (None) are not compared."""
    diff = []
    if saved_cfg is not None:
        keys = sorted((set(saved_cfg) | set(cfg)) - set(RESUME_FREE_KEYS))
        diff += [f"{k}: {saved_cfg.get(k)!r} -> {cfg.get(k)!r}" for k in keys if saved_cfg.get(k) != cfg.get(k)]
    if saved_inputs is not None and inputs is not None:
        keys = sorted(set(saved_inputs) | set(inputs))
        diff += [f"{k}: {saved_inputs.get(k)} -> {inputs.get(k)}" for k in keys
                 if saved_inputs.get(k) != inputs.get(k)]
    return diff


def check_resumable(ck: Dict[str, Any], cfg: Dict[str, Any], inputs: Optional[Dict[str, Any]], path: Path) -> None:
    """Refuse to resume under other options or inputs: the optimiser state alone would fail with an unreadable
    error or, worse, load and train something else than either run describes."""
    diff = run_differences(ck.get("config"), cfg, ck.get("inputs"), inputs)
    if diff:
        raise CheckpointError(f"{path} was written by a run with other options or inputs ({'; '.join(diff[:6])}); "
                              f"resume with the same ones, or retrain from the start with --force")


DONE_NAME = ".done"


def read_done(out_dir: Path) -> Optional[Dict[str, Any]]:
    """The record a finished run leaves ({steps, config, inputs}); {} for a run finished before runs kept
    one (the file held the step count alone); None if the run has not finished."""
    path = Path(out_dir) / DONE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


RUN_OUTPUTS = (DONE_NAME, CHECKPOINT_NAME, PREVIOUS_NAME, "best", "final", "snapshots", "tensorboard")


def clear_run(out_dir: Path) -> None:
    """What a run trained from step 0 (--force) replaces: an earlier run's snapshots or best/ left beside the
    new run's would be read as its own (waypoint guidance takes every snapshot in the dir)."""
    for name in RUN_OUTPUTS:
        path = Path(out_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def restore_rng(ck: Dict[str, Any], info: DistInfo, log) -> None:
    """Each rank continues its own random draws; a rank the checkpoint has no state for (more processes
    than wrote it) keeps its fresh seed, and the run is then not bitwise the one it continues."""
    saved = rank_rng_state(ck["rng"], info.rank)
    if saved is not None:
        set_rng_state(saved)
    written_by = ck.get("world_size", 1)
    if written_by != info.world_size and info.is_main:
        log.warning(f"the checkpoint was written by {written_by} process(es), this run has {info.world_size}: "
                    "it continues with the same global batches, but its random draws are not bitwise the same")


def train(cfg: Dict[str, Any], model: nn.Module, train_set, valid_set, tokenizer, out_dir: Path,
          model_fields: Dict[str, Any], guide: Optional[Guide] = None, resume: bool = False,
          info: DistInfo = DistInfo(), device: torch.device = torch.device("cpu"),
          inputs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train `model` (an ASRCTCModel or a TextClassifier) in place; writes under out_dir: checkpoint.pt,
    best/ and final/ model dirs, snapshots/step_<N>/, train.log, tensorboard/, loss_curves.png, and .done
    at the end. `tokenizer` decodes ASR validation output (unused for classifiers). `inputs` (fingerprints of
    the start model, teacher and data) is kept with the checkpoints and .done: a resume under other inputs is
    refused. Returns the final state summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    main = info.is_main
    log = get_logger(out_dir, main)
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    set_seed(rank_seed(cfg["seed"], info.rank))
    dtype = run_dtype(cfg["dtype"])
    task = task_of(model)
    if task is ASR:
        model.specaug = SpecAugment(**cfg["specaug_conf"]) if cfg["specaug"] else None
    elif cfg["specaug"]:
        raise ValueError("specaug applies to speech models only; set specaug: false for text")
    limit = apply_position_limit(model, cfg["position_limit"], train_set.lengths)
    if limit is not None:
        log.info(f"positions clamped from frame {limit} on (position_limit: {cfg['position_limit']})")
        # the saved config must rebuild the clamped encoder
        model_fields = {**model_fields, "encoder_conf": {**model_fields.get("encoder_conf", {}),
                                                         "position_limit": limit}}
    collate = collate_of(train_set)
    model.to(device, dtype).train()
    if guide is not None:
        guide.to(device, dtype)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.enabled else model
    optimizer = build_optimizer(model, cfg["optim"], cfg["optim_conf"])
    scheduler = build_scheduler(optimizer, cfg["scheduler"], cfg["scheduler_conf"], cfg["max_steps"])
    sampler = LengthBucketBatchSampler(train_set.lengths, cfg["batch_bins"], shuffle=True, seed=cfg["seed"],
                                       max_batch_size=cfg["max_batch_size"])
    valid_bins = cfg["valid_batch_bins"] or cfg["batch_bins"]
    valid_batches = list(LengthBucketBatchSampler(valid_set.lengths, valid_bins, shuffle=False,
                                                  max_batch_size=cfg["max_batch_size"]))
    best = f"best_{task.metric}"
    st = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "nonfinite_total": 0, "nonfinite_in_a_row": 0,
          best: math.inf, "best_step": 0}
    history = None
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and has_checkpoint(ckpt_path):
        ck = load_checkpoint(ckpt_path, device, log)
        check_resumable(ck, cfg, inputs, ckpt_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        st.update(ck["state"])
        history = ck["history"]
        if guide is not None:
            guide.load_state_dict(ck["guide"])
        restore_rng(ck, info, log)
        log.info(f"resumed from {ckpt_path} at step {st['step']} (epoch {st['epoch']}, "
                 f"batch {st['batch_in_epoch']})")
    if main:
        (out_dir / DONE_NAME).unlink(missing_ok=True)  # a run under way is not finished, whatever ran before
    scalars = Scalars(out_dir, main, history)

    def checkpoint() -> None:
        rngs = gather_objects(rng_state(), info)  # every rank's generators, so each resumes its own draws
        if main:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "state": dict(st), "rng": rngs,
                             "world_size": info.world_size,
                             "guide": guide.state_dict() if guide is not None else {},
                             "history": scalars.history, "config": cfg, "inputs": inputs}, ckpt_path)

    def run_validation() -> None:
        if main:
            res = validate(model, valid_set, valid_batches, tokenizer)
            if task is ASR:
                scalars.add(st["step"], {"valid/loss": res["loss"], "valid/wer": res["wer"]})
            else:
                scalars.add(st["step"], {"valid/loss": res["loss"], "valid/acc": res["acc"],
                                         "valid/macro_f1": res["macro_f1"]})
            better = res[task.metric] < st[best]
            if better:
                st[best], st["best_step"] = res[task.metric], st["step"]
                if task is CLASSIFICATION:
                    st["best_macro_f1"] = res["macro_f1"]
                save_model(model, {**model_fields, "trained_steps": st["step"]}, out_dir / "best")
            if task is ASR:
                log.info(f"step {st['step']}: dev loss {res['loss']:.3f}, dev WER {res['wer']:.2f}%"
                         + (" (best so far)" if better else f" (best {st[best]:.2f}% at {st['best_step']})"))
            else:
                log.info(f"step {st['step']}: dev loss {res['loss']:.3f}, dev accuracy {res['acc']:.2f}%, "
                         f"macro-F1 {res['macro_f1']:.2f}%" + (" (best so far)" if better else
                                                               f" (best {100 - st[best]:.2f}% at {st['best_step']})"))
            scalars.plot()
        barrier(info)

    acc = {task.loss_name: 0.0, "layer": 0.0, "logits": 0.0, "utts": 0, "frames": 0, "gnorm": 0.0, "steps": 0}
    pbar = tqdm(total=cfg["max_steps"], initial=st["step"], disable=not main, desc=out_dir.name,
                dynamic_ncols=True, mininterval=5)
    t0, steps_at_t0 = time.time(), st["step"]
    stopped_early = False
    while st["step"] < cfg["max_steps"] and not stopped_early:
        sampler.set_epoch(st["epoch"])
        batches = list(sampler)
        while st["batch_in_epoch"] < len(batches) and st["step"] < cfg["max_steps"]:
            group = batches[st["batch_in_epoch"]: st["batch_in_epoch"] + cfg["accum_grad"]]
            st["batch_in_epoch"] += len(group)
            norm = StepNorm(sum(len(b) for b in group),
                            sum(_frames(model, [train_set.lengths[i] for i in b]) for b in group), info.world_size)
            micro: List[tuple] = []
            for b in group:
                mine = shard(b, info)
                # a rank left without utterances still joins the gradient all-reduce, with weight 0
                micro.append((to_device(collate([train_set[i] for i in (mine or b[:1])]), device, dtype),
                              1.0 if mine else 0.0))
            optimizer.zero_grad(set_to_none=True)
            ok, stats_step = True, []
            for k, (batch, weight) in enumerate(micro):
                sync = k == len(micro) - 1 or not info.enabled
                ctx = ddp.no_sync() if not sync else contextlib.nullcontext()
                with ctx:
                    loss, stats = compute_loss(ddp, batch, cfg, guide, st["step"], norm, weight)
                    if not all_true(bool(torch.isfinite(loss)), info):
                        ok = False
                        break
                    loss.backward()
                stats_step.append(stats)
            if ok:
                gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"]))
                ok = all_true(math.isfinite(gnorm), info)
            if not ok:
                optimizer.zero_grad(set_to_none=True)
                st["nonfinite_total"] += 1
                st["nonfinite_in_a_row"] += 1
                log.warning(f"step {st['step']}: non-finite loss or gradient, batch skipped "
                            f"({st['nonfinite_in_a_row']} in a row, {st['nonfinite_total']} in all)")
                if st["nonfinite_in_a_row"] >= cfg["max_nonfinite_in_a_row"]:
                    checkpoint()
                    raise FloatingPointError(
                        f"{st['nonfinite_in_a_row']} batches in a row had a non-finite loss or gradient; stopping "
                        f"at step {st['step']}. Lower the learning rate or check the data (see {out_dir}/train.log)")
                continue
            st["nonfinite_in_a_row"] = 0
            optimizer.step()
            scheduler.step()
            st["step"] += 1
            if guide is not None:
                guide.after_step([(batch, weight * norm.world / norm.n_utts) for batch, weight in micro], st["step"])
            for s in stats_step:
                for k, v in s.items():
                    acc[k] += v
            acc["utts"] += norm.n_utts
            acc["frames"] += norm.n_frames
            acc["gnorm"] += gnorm
            acc["steps"] += 1
            pbar.update(1)
            if st["step"] % cfg["log_every"] == 0 or st["step"] == cfg["max_steps"]:
                # per-rank sums of this rank's shard; rank 0 logs its share scaled to the global count
                scale = info.world_size
                vals = {f"train/{task.loss_name}": acc[task.loss_name] * scale / acc["utts"],
                        "train/lr": scheduler.get_last_lr()[0], "train/grad_norm": acc["gnorm"] / acc["steps"]}
                if acc["layer"]:
                    vals["train/layer"] = acc["layer"] * scale / acc["frames"]
                if acc["logits"]:
                    vals["train/logits"] = acc["logits"] * scale / (acc["utts"] if task is CLASSIFICATION
                                                                     else acc["frames"])
                if main:
                    scalars.add(st["step"], vals)
                    rate = (st["step"] - steps_at_t0) / max(time.time() - t0, 1e-9)
                    eta = (cfg["max_steps"] - st["step"]) / max(rate, 1e-9)
                    log.info(f"step {st['step']}/{cfg['max_steps']} epoch {st['epoch']} "
                             + " ".join(f"{k[6:]} {v:.4g}" for k, v in vals.items())
                             + f" | {rate:.2f} steps/s, ETA {eta / 60:.1f} min")
                acc = {k: 0 for k in acc}
            if cfg["snapshot_every"] and st["step"] % cfg["snapshot_every"] == 0 and main:
                save_model(model, {**model_fields, "trained_steps": st["step"]},
                           out_dir / "snapshots" / f"step_{st['step']}")
            if st["step"] % cfg["valid_every"] == 0 and st["step"] < cfg["max_steps"]:
                run_validation()
            if st["step"] % cfg["checkpoint_every"] == 0:
                checkpoint()
            if cfg["stop_after"] is not None and st["step"] >= cfg["stop_after"]:
                stopped_early = True
                break
        if st["batch_in_epoch"] >= len(batches):
            st["epoch"] += 1
            st["batch_in_epoch"] = 0
    pbar.close()
    if stopped_early:
        log.info(f"stopped after step {st['step']} (stop_after); resume with --resume")
        return dict(st)
    run_validation()
    checkpoint()
    if main:
        save_model(model, {**model_fields, "trained_steps": st["step"]}, out_dir / "final")
        record = {"steps": st["step"], "config": cfg, "inputs": inputs}
        (out_dir / DONE_NAME).write_text(json.dumps(record, indent=1, default=str) + "\n")
        png = scalars.plot()
        result = (f"best dev WER {st[best]:.2f}%" if task is ASR else
                  f"best dev accuracy {100 - st[best]:.2f}% (macro-F1 {st.get('best_macro_f1', math.nan):.2f}%)")
        teacher_skips = getattr(guide, "skipped", None)
        teacher_note = "" if teacher_skips is None else f", {teacher_skips} teacher update(s)"
        log.info(f"done: {st['step']} steps, {result} at step {st['best_step']}; "
                 f"{st['nonfinite_total']} batch(es){teacher_note} skipped as non-finite; curves: {png}")
    scalars.close()
    return dict(st)

