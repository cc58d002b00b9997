"""What selects best/ (best_metric: the task's dev error or the dev loss, ties broken by the loss), the
warning when every dev hypothesis is empty, and a warm-up given as a fraction of max_steps."""

import re
from types import SimpleNamespace

import pytest
import torch

from cald_asr.bin import asr_train
from cald_asr.models.model_file import load_model
from cald_asr.train.optim import build_scheduler, warmup_steps
from cald_asr.train.trainer import selection

from train_helpers import std_args

EARLY = ["--max_steps", 6, "--valid_every", 2, "--checkpoint_every", 100]


def dev_results(log: str):
    return [
        (int(s), float(loss), float(wer))
        for s, loss, wer in re.findall(r"step (\d+): dev loss ([0-9.]+), dev WER ([0-9.]+)%", log)
    ]


def test_selection_rule():
    run = SimpleNamespace(cfg={"best_metric": None}, task=SimpleNamespace(metric="wer"))
    a, b, c = {"wer": 50.0, "loss": 2.0}, {"wer": 60.0, "loss": 1.0}, {"wer": 50.0, "loss": 1.5}
    assert min([a, b, c], key=lambda r: selection(run, r)) is c, "lowest WER, the tie broken by the loss"
    run.cfg["best_metric"] = "loss"
    assert min([a, b, c], key=lambda r: selection(run, r)) is b


@pytest.mark.parametrize("best_metric", [None, "loss"])
def test_an_early_run_keeps_the_lowest_loss_model_and_warns_of_empty_output(yesno, tmp_path, best_metric):
    """Six steps in, the tiny teacher outputs only blanks: every dev WER is 100 % while the dev loss falls. best/
    is the lowest-loss model either way (WER ties), not the empty-output model of the first validation."""
    out = tmp_path / "run"
    extra = ["--best_metric", best_metric] if best_metric else []
    assert asr_train.main(std_args(yesno, out, *EARLY, *extra)) == 0
    log = (out / "train.log").read_text()
    results = dev_results(log)
    assert [s for s, _, _ in results] == [2, 4, 6] and {w for _, _, w in results} == {100.0}
    assert len({loss for _, loss, _ in results}) == 3
    lowest = min(results, key=lambda r: r[1])[0]
    assert load_model(out / "best")[1]["trained_steps"] == lowest
    assert lowest != 2, "the loss fell after the first validation"
    assert "every dev hypothesis is empty (5 utterances)" in log


def test_a_best_metric_the_task_does_not_have_is_refused(yesno, tmp_path, capsys):
    assert asr_train.main(std_args(yesno, tmp_path / "run", *EARLY, "--best_metric", "err")) == 1
    assert "best_metric 'err': this task selects best/ by wer or loss" in capsys.readouterr().err


@pytest.mark.parametrize("max_steps", [100, 300])
def test_a_fractional_warmup_scales_with_max_steps(max_steps):
    conf = {"warmup_steps": 0.1, "final_lr_ratio": 0.01}
    assert warmup_steps(conf, max_steps) == max_steps // 10
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, "warmup_exp", conf, max_steps)
    lrs = []
    for _ in range(max_steps):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert max(range(max_steps), key=lrs.__getitem__) == max_steps // 10 - 1, "the peak at the end of the warm-up"
    assert warmup_steps({"warmup_steps": 20}, max_steps) == 20, "a whole number is steps"


def test_a_warmup_longer_than_a_third_of_the_run_is_warned_of(yesno, tmp_path):
    out = tmp_path / "run"  # the yesno teacher config warms up over 20 steps
    assert asr_train.main(std_args(yesno, out, "--max_steps", 30, "--valid_every", 100)) == 0
    assert "the warm-up (20 steps) is more than a third of the run (30 steps)" in (out / "train.log").read_text()
