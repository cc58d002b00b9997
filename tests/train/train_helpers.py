"""Shared by the training tests: the yesno recipe's configs, the command line of asr_train (as a
subprocess, or its own functions in this process) and parameter comparisons.

Every run uses one torch thread: the machine is shared, and with a fixed thread count CPU kernels give
the same bits run after run, which the resume and DDP comparisons rely on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import torch

from cald_asr.bin import asr_train
from cald_asr.data.dataset import ASRDataset
from cald_asr.data.sampler import LengthBucketBatchSampler
from cald_asr.models.model_file import load_model
from cald_asr.text import TokenList, build_tokenizer
from cald_asr.train.config import load_yaml, merge_with_defaults
from cald_asr.train.trainer import DEFAULTS, train

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "yesno" / "asr1"
TEACHER_CONF = RECIPE / "conf" / "train_teacher.yaml"
STUDENT_CONF = RECIPE / "conf" / "train_student.yaml"
MIXER_CONF = RECIPE / "conf" / "bimamba2_tiny.yaml"
CALD_CONF = REPO / "conf" / "cald"

# small batches keep a step well under a second; one thread (see above)
FAST = ["--num_threads", "1", "--max_batch_size", "4", "--log_every", "1"]


@dataclass(frozen=True)
class Yesno:
    root: Path
    train: Path  # dump/train_nodev (26 utterances)
    valid: Path  # dump/train_dev (5)
    init: Path  # stage 4's tiny transformer: "the pretrained model"


@dataclass(frozen=True)
class Teacher:
    dir: Path
    best: Path  # "the fine-tuned teacher"
    snapshots: Path  # step_2, step_4, step_6


def subprocess_env() -> Dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args, **kw) -> subprocess.CompletedProcess:
    """python -m cald_asr.bin.asr_train ARGS, as the recipe calls it."""
    return subprocess.run(
        [sys.executable, "-m", "cald_asr.bin.asr_train", *map(str, args)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        **kw,
    )


def std_args(yesno: Yesno, out: Path, *extra) -> list:
    return strings(
        "--config",
        TEACHER_CONF,
        "--init_model",
        yesno.init,
        "--train_data",
        yesno.train,
        "--valid_data",
        yesno.valid,
        "--output_dir",
        out,
        *FAST,
        *extra,
    )


def cald_args(strategy: str, yesno: Yesno, teacher: Teacher, out: Path, *extra) -> list:
    return strings(
        "--config",
        STUDENT_CONF,
        "--cald_config",
        CALD_CONF / f"{strategy}.yaml",
        "--mixer_config",
        MIXER_CONF,
        "--pretrained_model",
        yesno.init,
        "--finetuned_model",
        teacher.best,
        "--snapshot_dir",
        teacher.snapshots,
        "--train_data",
        yesno.train,
        "--valid_data",
        yesno.valid,
        "--output_dir",
        out,
        *FAST,
        *extra,
    )


def strings(*args) -> list:
    return [str(a) for a in args]


def build(argv: Sequence) -> tuple:
    """What asr_train.main does before training: -> (cfg, model, fields, guide, args)."""
    args, overrides = asr_train.get_parser().parse_known_args(list(argv))
    cfg = asr_train.build_config(args, overrides)
    model, fields, guide = asr_train.build_models(cfg, args)
    return cfg, model, fields, guide, args


def datasets(fields: dict, yesno: Yesno):
    tokenizer = build_tokenizer(fields.get("token_type", "char"), TokenList(fields["token_list"]))
    return ASRDataset(yesno.train, tokenizer), ASRDataset(yesno.valid, tokenizer), tokenizer


def train_in_process(argv: Sequence, yesno: Yesno, wrap_guide=None):
    """Train through the Python API with the objects main() would build; wrap_guide(guide) may
    instrument the guide first. -> (guide, final state, output dir)."""
    cfg, model, fields, guide, args = build(argv)
    if wrap_guide is not None:
        wrap_guide(guide)
    train_set, valid_set, tokenizer = datasets(fields, yesno)
    out = Path(args.output_dir)
    state = train(cfg, model, train_set, valid_set, tokenizer, out, fields, guide, resume=args.resume)
    return guide, state, out


def state_of(model_or_dir) -> Dict[str, torch.Tensor]:
    if isinstance(model_or_dir, (str, Path)):
        model_or_dir, _ = load_model(model_or_dir)
    return {k: v.detach().clone() for k, v in model_or_dir.state_dict().items()}


def max_abs_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def read_step(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["state"]["step"])


def trainer_config(**over) -> dict:
    """The yesno teacher's training options, small batches, logging every step."""
    cfg = merge_with_defaults(load_yaml(TEACHER_CONF), DEFAULTS, str(TEACHER_CONF))
    fast = dict(num_threads=1, max_batch_size=4, log_every=1, valid_every=100, checkpoint_every=100, snapshot_every=0)
    cfg.update({**fast, **over})
    return cfg


def expected_skips(cfg, lengths, bad_index):
    """Replay the trainer's batch order: a batch holding the bad utterance is skipped, any other is a step;
    -> how many skips max_steps steps take."""
    sampler = LengthBucketBatchSampler(
        lengths, cfg["batch_bins"], shuffle=True, seed=cfg["seed"], max_batch_size=cfg["max_batch_size"]
    )
    steps = skips = epoch = 0
    while steps < cfg["max_steps"]:
        sampler.set_epoch(epoch)
        for b in sampler:
            if steps == cfg["max_steps"]:
                break
            if bad_index in b:
                skips += 1
            else:
                steps += 1
        epoch += 1
    return skips
