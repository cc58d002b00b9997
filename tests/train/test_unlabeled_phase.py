"""The task-agnostic CALD phase (task: layer_distillation, conf/cald/unlabeled.yaml): the layer loss alone
against the pretrained teacher, no transcript read, best/ by dev layer loss; and a task phase whose student
starts from its mixers (--init_mixers)."""

import re

import torch

from cald_asr.bin import asr_train

from train_helpers import CALD_CONF, REPO, build, cald_args, state_of

UNLABELED = REPO / "conf" / "cald" / "unlabeled.yaml"


def unlabeled_args(yesno, teacher, out, *extra):
    args = cald_args("target", yesno, teacher, out, "--max_steps", 4, "--valid_every", 2, *extra)
    args[args.index("--cald_config") + 1] = str(UNLABELED)
    args[args.index("--finetuned_model") + 1] = str(yesno.init)  # the teacher is the pretrained model
    return args


def test_layer_distillation_trains_the_mixers_on_the_layer_loss_alone(yesno, teacher, tmp_path):
    out = tmp_path / "pre"
    assert asr_train.main(unlabeled_args(yesno, teacher, out)) == 0
    log = (out / "train.log").read_text()
    assert re.search(r"step 2: dev layer loss [0-9.]+ \(best so far\)", log)
    assert re.search(r"done: 4 steps, best dev layer loss [0-9.]+ at step [24]", log)
    assert all(" task 0 " in line for line in log.splitlines() if re.search(r"step \d/4 epoch", line))
    init, final = state_of(yesno.init), state_of(out / "final")
    # no transcript, no task term: the CTC head (which only the task loss reaches) is the pretrained one
    assert torch.equal(final["ctc.weight"], init["ctc.weight"]) and torch.equal(final["ctc.bias"], init["ctc.bias"])
    moved = [k for k in final if ".self_attn." in k and k.endswith("in_proj.weight")]
    assert moved


def test_layer_distillation_needs_a_fixed_teacher(yesno, teacher, tmp_path, capsys):
    args = unlabeled_args(yesno, teacher, tmp_path / "run", "--strategy", "unguided")
    args[args.index("--pretrained_model") + 1] = str(yesno.init)
    assert asr_train.main(args) == 1
    assert "task layer_distillation needs a fixed teacher: strategy target" in capsys.readouterr().err


def test_a_task_phase_starts_from_the_unlabeled_phase_mixers(yesno, teacher, tmp_path, capsys):
    pre = tmp_path / "pre"
    assert asr_train.main(unlabeled_args(yesno, teacher, pre, "--max_steps", 2)) == 0
    donor = state_of(pre / "best")
    _, student, fields, _, _ = build(
        cald_args("target", yesno, teacher, tmp_path / "run", "--init_mixers", pre / "best")
    )
    mine, start = state_of(student), state_of(teacher.best)
    mixers = [k for k in mine if ".self_attn." in k]
    assert mixers and all(torch.equal(mine[k], donor[k]) for k in mixers), "mixers from the unlabeled phase"
    assert all(torch.equal(mine[k], start[k]) for k in mine if k not in mixers), "the rest: the strategy's start"
    assert fields["mixers_from"] == str(pre / "best")
    # another mixer shape is refused, naming both
    other = tmp_path / "other.yaml"
    other.write_text("mixer: bimamba2\nmixer_conf: {d_state: 8, headdim: 16}\n")
    args = cald_args("target", yesno, teacher, tmp_path / "run2", "--init_mixers", pre / "best", "--max_steps", 1)
    args[args.index("--mixer_config") + 1] = str(other)
    capsys.readouterr()
    assert asr_train.main(args) == 1
    assert f"--init_mixers {pre / 'best'}: its mixer is bimamba2" in capsys.readouterr().err
    assert CALD_CONF.is_dir()
