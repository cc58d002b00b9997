"""The training options: their defaults (ESPnet-style flat YAML keys; a recipe's train_*.yaml overrides them,
the command line overrides both) and their types, which config.py checks at any depth."""

from __future__ import annotations

from typing import Any, Dict

from cald_asr.data.augment import DEFAULTS as AUGMENT_DEFAULTS
from cald_asr.distill.guides import CACHE_DTYPES, STRATEGIES
from cald_asr.frontend.specaug import SpecAugment
from cald_asr.mixers.registry import MIXERS
from cald_asr.precision import AMP_MODES, DTYPES
from cald_asr.tasks import TASKS
from cald_asr.train.config import Fixed, Mapping, OptionSpec, Spec, keyword_specs, spec_of
from cald_asr.train.optim import OPTIMIZERS, SCHEDULERS

DEFAULTS: Dict[str, Any] = {
    "seed": 0,  # rank r of a multi-process run seeds its augmentation and dropout with seed + r
    "dtype": "float32",  # float64: the whole run in double precision (equality checks, see precision.py)
    "grad_checkpoint": False,  # recompute each encoder layer's activations in backward (grad_checkpoint.py)
    "amp": "none",  # bf16 | fp16: forward passes under autocast, losses in float32, fp16 with loss scaling
    "max_steps": 1000,
    "batch_bins": 1_600_000,  # cap on padded input size per global batch: batch size x longest input
    "max_batch_size": 64,
    # cap on the padded sum of squared lengths per batch, batch size x longest input ** 2, in batch_bins' units
    # squared (samples^2 for raw audio): bounds an attention teacher's memory on long utterances; null: no cap
    "batch_sq_bins": None,
    "max_unk_share": 0.01,  # ASR: transcript symbols outside the token list above this share: an error
    "accum_grad": 1,
    "optim": "adamw",
    # lr_scale: {name pattern: lr multiplier}, e.g. {"*.E.weight": 50} (cald_asr/train/optim.py)
    "optim_conf": {"lr": 1.0e-3, "betas": [0.9, 0.98], "eps": 1.0e-8, "weight_decay": 0.0, "lr_scale": {}},
    "scheduler": "warmup_exp",
    "scheduler_conf": {"warmup_steps": 100, "final_lr_ratio": 0.01, "decay_steps": None},
    "grad_clip": 1.0,
    "specaug": False,
    "specaug_conf": {},
    # waveform augmentation of the training set, seen by the teacher too (cald_asr/data/augment.py): {speed:
    # {prob, factors}, reverb: {prob, rt60_s}, noise: {prob, snr_db, colours}, babble: {prob, snr_db, utterances}}
    "augment": {},
    # data loading (train/loader.py): worker processes read, resample and augment the next batches
    "num_workers": 0,  # 0: in the training process
    "pin_memory": True,  # on CUDA only
    "persistent_workers": True,
    "prefetch_factor": 2,  # batches each worker reads ahead
    "loader_timeout_s": 600.0,  # a worker silent this long stops the run
    "valid_every": 200,
    "valid_batch_bins": None,  # default: batch_bins
    "snapshot_every": 0,  # > 0: save snapshots/step_<N>/ (waypoints for a later CALD run)
    "checkpoint_every": 100,
    "log_every": 10,
    "max_nonfinite_in_a_row": 10,
    "skip_oom_batches": False,  # a batch that runs out of memory: skipped and counted (true) or an error naming it
    "dist_timeout_s": 600.0,  # torchrun: a collective waiting this long on a lost rank fails instead of hanging
    "stop_after": None,  # leave the loop after this many steps as if killed (resume tests)
    "num_threads": 0,  # torch threads; 0 keeps torch's default
    "average_checkpoints": 0,  # N > 0: ave_N/, the mean of the models of the N best validations (averaging.py)
    "best_metric": None,  # what best/ is the lowest of: null = the task's dev error (WER...), or loss; ties: loss
    "position_limit": None,  # recurrent students: clamp absolute positions at N frames, or "auto" (see below)
    "task": None,  # null: the model's own task; layer_distillation: the layer loss alone on unlabeled audio
    # CALD (stage 6); strategy null = plain task training
    "strategy": None,
    "alpha_layer": 15.0,
    "alpha_logits": 0.0,
    "temperature": 2.0,
    "teacher_mode": "eval",
    "cache_teacher": False,
    "cache_dtype": "float16",  # what the teacher cache stores: float16, bfloat16 or float32 (exact)
    "switch_off_step": None,  # hybrid
    "teacher_lr": None,  # trajectory (default: the student's lr)
    "update_every": 1,  # trajectory T_u
    "mixer": None,
    "mixer_conf": {},
}


# The type of every option (config.py checks files and overrides against them, at any depth); what a
# default does not say (None defaults, choices, fixed nested keys) is declared here.
OPTION_SPECS: Dict[str, OptionSpec] = {
    **{k: spec_of(v) for k, v in DEFAULTS.items()},
    "dtype": Spec(choices=tuple(DTYPES)),
    "optim": Spec(choices=tuple(OPTIMIZERS)),
    "optim_conf": Fixed(
        {
            "lr": Spec((float,)),
            "betas": Spec((list,)),
            "eps": Spec((float,)),
            "weight_decay": Spec((float,)),
            "lr_scale": Mapping(Spec((float,))),
        }
    ),
    "scheduler": Spec(choices=tuple(SCHEDULERS)),
    "scheduler_conf": Fixed(
        {
            "warmup_steps": Spec((int, float)),  # steps, or below 1 a fraction of max_steps
            "final_lr_ratio": Spec((float,)),
            "decay_steps": Spec((int,), optional=True),
        }
    ),
    "specaug_conf": keyword_specs(SpecAugment),
    "augment": Fixed({k: Fixed({kk: spec_of(vv) for kk, vv in v.items()}) for k, v in AUGMENT_DEFAULTS.items()}),
    "valid_batch_bins": Spec((int,), optional=True),
    "batch_sq_bins": Spec((int, float), optional=True),
    "max_unk_share": Spec((float,), optional=True),
    "stop_after": Spec((int,), optional=True),
    "position_limit": Spec((int,), choices=("auto",), optional=True),
    "strategy": Spec(choices=tuple(STRATEGIES), optional=True),
    "task": Spec(choices=tuple(TASKS), optional=True),
    "average_checkpoints": Spec((int,)),
    "best_metric": Spec(choices=tuple(sorted({t.metric for t in TASKS.values()} | {"loss"})), optional=True),
    "teacher_mode": Spec(choices=("eval", "train")),
    "cache_dtype": Spec(choices=tuple(CACHE_DTYPES)),
    "amp": Spec(choices=AMP_MODES),
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


# Options that only change what is logged or how often: a resumed run may change them freely.
RESUME_FREE_KEYS = (
    "grad_checkpoint",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
    "loader_timeout_s",
    "log_every",
    "valid_every",
    "checkpoint_every",
    "snapshot_every",
    "num_threads",
    "valid_batch_bins",
    "stop_after",
    "max_nonfinite_in_a_row",
    "skip_oom_batches",
    "dist_timeout_s",
)
