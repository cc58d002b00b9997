"""Train an ASR model: the Std. fine-tuning of a transformer (stage 5) or CALD (stage 6).

Std. run (teacher fine-tuning, snapshots kept for waypoint guidance):
    python -m cald_asr.bin.asr_train --config conf/train_teacher.yaml --init_model exp/teacher/init \
        --train_data dump/train --valid_data dump/dev --output_dir exp/teacher

CALD: the student is the model named by the strategy's start point, converted by the config's mixer:
    python -m cald_asr.bin.asr_train --config conf/train_student.yaml --cald_config ../../../conf/cald/target.yaml \
        --pretrained_model exp/teacher/init --finetuned_model exp/teacher/best --snapshot_dir exp/teacher/snapshots \
        --train_data dump/train --valid_data dump/dev --output_dir exp/cald_target_bimamba2

Text classification (a text_cls model, `python -m cald_asr.bin.cls_train`) takes the same options; its
data dirs hold the token ids of stage 2 (see cald_asr.data.text_dataset) instead of audio.

Any config key can be overridden: --max_steps 200 --optim_conf.lr 5e-4. --resume continues a killed run
exactly. --nproc N (CPU, gloo) or --ngpu N starts N processes under torchrun (DistributedDataParallel);
for several nodes run torchrun yourself with its own arguments around `-m cald_asr.bin.asr_train`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from cald_asr.convert import SLOT, convert_model
from cald_asr.data.augment import active as augment_active
from cald_asr.distill.guides import STRATEGIES, STUDENT_INIT, GuideContext
from cald_asr.models.model_file import load_model
from cald_asr.tasks import TASKS, task_for
from cald_asr.train.checkpoint import CHECKPOINT_NAME, CheckpointError, has_checkpoint
from cald_asr.train.config import ConfigError, apply_overrides, check_option, load_yaml, merge_with_defaults
from cald_asr.train.distributed import init_distributed, shutdown_distributed
from cald_asr.train.oom import BatchOutOfMemory
from cald_asr.train.optim import build_optimizer
from cald_asr.train.options import DEFAULTS, OPTION_SPECS, mixer_conf_spec
from cald_asr.train.provenance import clear_run, read_done, run_differences, run_inputs
from cald_asr.train.run_lock import RunLock, RunLockError
from cald_asr.train.trainer import set_seed, train


def get_parser(doc: str = __doc__) -> argparse.ArgumentParser:
    # allow_abbrev=False: config overrides pass through unparsed, and "--mixer X" must not become --mixer_config
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
        epilog=doc + "\n" + training_options_help(),
    )
    p.add_argument("--config", required=True, help="training YAML (flat, ESPnet style)")
    p.add_argument("--cald_config", default=None, help="CALD YAML (strategy, loss weights); omit for Std.")
    p.add_argument("--mixer_config", default=None, help="YAML with mixer: and mixer_conf: (CALD student)")
    p.add_argument("--init_model", default=None, help="model dir to fine-tune (Std. run)")
    p.add_argument("--pretrained_model", default=None, help="CALD: the pretrained transformer (stage 4 output)")
    p.add_argument("--finetuned_model", default=None, help="CALD: the fine-tuned teacher (stage 5 best)")
    p.add_argument("--snapshot_dir", default=None, help="CALD waypoint: the Std. run's snapshots/")
    p.add_argument(
        "--init_mixers",
        default=None,
        help="CALD: a converted model (e.g. the unlabeled phase's best/) whose mixers the student starts from",
    )
    p.add_argument("--train_data", help="data dir to train on (required unless --print_config)")
    p.add_argument("--valid_data", help="dev data dir (required unless --print_config)")
    p.add_argument("--output_dir", help="the run's experiment dir (required unless --print_config)")
    p.add_argument("--print_config", action="store_true", help="print the merged training config and exit")
    p.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoint.pt")
    p.add_argument("--force", action="store_true", help="retrain even if output_dir holds a finished run")
    p.add_argument("--nproc", type=int, default=0, help="CPU processes (gloo) under torchrun")
    p.add_argument("--ngpu", type=int, default=0, help="GPUs (one process each) under torchrun")
    return p


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and each argument's default."""


def training_options_help() -> str:
    """Every training option with its default, for --help (any of them: --key value, or --a.b value)."""
    lines = ["training options (YAML keys; on the command line --key value, --a.b value or --a b=value):"]
    for k, v in DEFAULTS.items():
        lines.append(
            f"  --{k} {yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()}"
        )
    return "\n".join(lines)


def build_config(args, overrides: Sequence[str]):
    cfg: dict = {}
    mixer_source = "the defaults"  # the file that set mixer_conf, named when its keys do not fit the mixer
    for path in (args.config, args.cald_config, args.mixer_config):
        if path:
            data = load_yaml(path)
            cfg = merge_with_defaults({**cfg, **data}, DEFAULTS, path, OPTION_SPECS)
            mixer_source = path if "mixer_conf" in data else mixer_source
    cfg = apply_overrides(cfg, overrides, DEFAULTS, OPTION_SPECS)
    strategy = cfg["strategy"]
    if strategy is not None and not cfg["mixer"]:
        raise ConfigError("a CALD run needs mixer: (and mixer_conf:) in its config")
    if cfg["mixer"]:
        check_option(
            "mixer_conf", cfg["mixer_conf"], mixer_conf_spec(cfg["mixer"]), f"{mixer_source} (mixer {cfg['mixer']})"
        )
    if cfg["task"]:
        TASKS.lookup(cfg["task"]).check_options(cfg)
    if cfg["cache_teacher"] and augment_active(cfg["augment"]):
        raise ConfigError(
            "cache_teacher stores the teacher's outputs on clean input, but with augment on the teacher "
            "must read each augmented batch: set cache_teacher: false (or drop augment)"
        )
    return cfg


def read_models(cfg, args) -> Dict[str, Optional[str]]:
    """{role: model dir} of what the run reads: --init_model (Std.), or the strategy's start model, which is
    also the teacher of target, hybrid and trajectory."""
    strategy = cfg["strategy"]
    if strategy is None:
        return {"init_model": args.init_model}
    role = f"{STUDENT_INIT[strategy]}_model"
    return {role: getattr(args, role), **({"init_mixers": args.init_mixers} if args.init_mixers else {})}


def inputs_of(cfg, args) -> Dict[str, str]:
    """Fingerprints of what the run is trained from (recorded in .done and checkpoints)."""
    models = read_models(cfg, args)
    for role, d in models.items():
        if d is None:
            raise ConfigError(
                f"{'a Std. run' if role == 'init_model' else 'strategy ' + cfg['strategy']} needs --{role}"
            )
        if not Path(d).is_dir():
            raise ConfigError(f"--{role} {d}: not a model dir")
    snapshots = args.snapshot_dir if cfg["strategy"] == "waypoint" else None
    if cfg["strategy"] == "waypoint" and not (snapshots and Path(snapshots).is_dir()):
        raise ConfigError("waypoint needs --snapshot_dir (the Std. run's snapshots/)")
    for flag in ("train_data", "valid_data"):
        if not Path(getattr(args, flag)).is_dir():
            raise ConfigError(f"--{flag} {getattr(args, flag)}: not a data dir")
    return run_inputs(models, snapshots, Path(args.train_data), Path(args.valid_data))


def check_finished_or_unfinished(out: Path, cfg, inputs, args, prog: str) -> Optional[int]:
    """A finished run is skipped when asked again with the same options and inputs, and refused (naming what
    differs) with other ones; an unfinished run's checkpoint is never overwritten without --resume or --force.
    -> an exit status to return now, or None to train."""
    if args.force:
        return None
    done = read_done(out)
    if done is not None:
        diff = run_differences(done.get("config"), cfg, done.get("inputs"), inputs)
        if diff:
            print(
                f"{prog}: error: {out} holds a finished run trained from other options or inputs "
                f"({'; '.join(diff[:6])}); --force retrains it",
                file=sys.stderr,
            )
            return 1
        print(f"{prog}: {out} holds a finished run, skipping (--force to retrain)")
        return 0
    if has_checkpoint(out / CHECKPOINT_NAME) and not args.resume:
        print(
            f"{prog}: error: {out} holds the checkpoint of an unfinished run: --resume continues it, --force "
            f"retrains from step 0",
            file=sys.stderr,
        )
        return 1
    return None


def teacher_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """The trajectory teacher's own AdamW (no weight decay, as the Std. run's teachers)."""
    return build_optimizer(model, "adamw", {"lr": lr, "weight_decay": 0.0})


def copy_mixers(student: torch.nn.Module, cfg, donor_dir: Path) -> None:
    """The student's mixers (every tensor under a .self_attn slot) take the values of `donor_dir`'s, a model
    converted to the same mixer (the unlabeled phase's result); every other tensor stays the strategy's."""
    donor, donor_fields = load_model(donor_dir)
    if (donor_fields.get("mixer"), donor_fields.get("mixer_conf")) != (cfg["mixer"], cfg["mixer_conf"]):
        raise ConfigError(
            f"--init_mixers {donor_dir}: its mixer is {donor_fields.get('mixer')} "
            f"{donor_fields.get('mixer_conf')}, this run's {cfg['mixer']} {cfg['mixer_conf']}"
        )
    slot = f".{SLOT}."
    theirs = {k: v for k, v in donor.state_dict().items() if slot in k}
    mine = {k for k in student.state_dict() if slot in k}
    if set(theirs) != mine:
        raise ConfigError(
            f"--init_mixers {donor_dir}: its mixers do not fit this student's (e.g. {sorted(set(theirs) ^ mine)[:3]})"
        )
    student.load_state_dict(theirs, strict=False)
    print(f"{len(theirs)} mixer tensors initialised from {donor_dir}", flush=True)


def build_models(cfg, args):
    """-> (student model, its config fields, guide)."""
    strategy = cfg["strategy"]
    if strategy is None:
        if not args.init_model:
            raise ConfigError("a Std. run needs --init_model")
        model, fields = load_model(args.init_model)
        return model, fields, None
    start = {"pretrained": args.pretrained_model, "finetuned": args.finetuned_model}[STUDENT_INIT[strategy]]
    if not start:
        raise ConfigError(
            f"strategy {strategy} starts the student from the "
            f"{STUDENT_INIT[strategy]} model: give --{STUDENT_INIT[strategy]}_model"
        )
    student, fields = load_model(start)
    if fields.get("mixer"):
        raise ConfigError(f"{start} is already converted; CALD starts from a transformer")
    teacher_src = copy.deepcopy(student)
    set_seed(cfg["seed"])  # the new mixers' initial weights follow the run's seed, not the process's RNG history
    report = convert_model(student, cfg["mixer"], cfg["mixer_conf"])
    print(report, flush=True)
    fields = {
        **fields,
        "mixer": cfg["mixer"],
        "mixer_conf": cfg["mixer_conf"],
        "cald_strategy": strategy,
        "initialised_from": str(start),
    }
    if args.init_mixers:
        copy_mixers(student, cfg, Path(args.init_mixers))
        fields["mixers_from"] = str(args.init_mixers)
    ctx = GuideContext(
        Path(args.output_dir),
        Path(args.snapshot_dir) if args.snapshot_dir else None,
        task_for(teacher_src).loss_sum,
        teacher_optimizer,
        distributed=int(os.environ.get("WORLD_SIZE", 1)) > 1,
    )
    guide = STRATEGIES.lookup(strategy).build(teacher_src, cfg, ctx)
    return student, fields, guide


def build_datasets(fields, args, model, cfg=None):
    """-> (train set, valid set, tokenizer for ASR validation or None): the model's task reads its data."""
    cfg = cfg or DEFAULTS
    return task_for(model, name=cfg["task"]).datasets(args.train_data, args.valid_data, fields, model, cfg)


def torchrun_command(argv: List[str], nproc: int, prog: str = "asr_train") -> List[str]:
    """torchrun (one node) around this program. The children keep --ngpu, which tells them to train on CUDA
    (they see WORLD_SIZE, so they do not relaunch); --nproc is dropped (children without --ngpu use CPU)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        f"cald_asr.bin.{prog}",
        *rest,
    ]


def relaunch_under_torchrun(argv: List[str], nproc: int, prog: str = "asr_train") -> int:
    cmd = torchrun_command(argv, nproc, prog)
    print(f"{prog}: " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv: Optional[Sequence[str]] = None, prog: str = "asr_train", doc: str = __doc__) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, overrides = get_parser(doc).parse_known_args(argv)
    nproc = args.ngpu or args.nproc
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        return relaunch_under_torchrun(argv, nproc, prog)
    missing = [f"--{k}" for k in ("train_data", "valid_data", "output_dir") if getattr(args, k) is None]
    if missing and not args.print_config:
        print(f"{prog}: error: the following arguments are required: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        cfg = build_config(args, overrides)
        if args.print_config:
            print(yaml.safe_dump(cfg, sort_keys=False), end="")
            return 0
        inputs = inputs_of(cfg, args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.output_dir)
    status = check_finished_or_unfinished(out, cfg, inputs, args, prog)
    if status is not None:
        return status
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        # one run per experiment dir; under torchrun the rank-0 process holds the lock
        with RunLock(out, log=lambda m: print(f"{prog}: {m}", flush=True)) if main_rank else contextlib.nullcontext():
            if args.force and main_rank:
                clear_run(out)
            return train_run(cfg, args, inputs, out, prog)
    except RunLockError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


def train_run(cfg, args, inputs, out: Path, prog: str) -> int:
    try:
        info = init_distributed(use_cuda=args.ngpu > 0, timeout_s=cfg["dist_timeout_s"])
        model, fields, guide = build_models(cfg, args)
        if args.ngpu and not torch.cuda.is_available():
            raise ConfigError(f"--ngpu {args.ngpu} but torch sees no CUDA device (use --nproc N on CPU)")
        device = torch.device(f"cuda:{info.local_rank}") if args.ngpu else torch.device("cpu")
        train_set, valid_set, tokenizer = build_datasets(fields, args, model, cfg)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    if info.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump({"train": cfg, "args": vars(args)}, sort_keys=False))
    try:
        # --force retrains from the start: a finished run's checkpoint is not a point to resume from
        train(
            cfg,
            model,
            train_set,
            valid_set,
            tokenizer,
            out,
            fields,
            guide,
            resume=args.resume and not args.force,
            info=info,
            device=device,
            inputs=inputs,
        )
    # a checkpoint that cannot be resumed; options the task refuses; a batch that does not fit in memory
    except (CheckpointError, ConfigError, BatchOutOfMemory) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    shutdown_distributed(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
