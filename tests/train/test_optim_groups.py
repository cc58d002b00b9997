"""AdamW parameter groups: no weight decay on biases and norms, and lr_scale by parameter-name pattern."""

import pytest
from torch import nn

from cald_asr.mixers import Linformer
from cald_asr.train.optim import build_optimizer, build_scheduler


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = Linformer(16, 2, max_len=12, k=4)
        self.norm = nn.LayerNorm(16)


def group_of(opt, p):
    return next(g for g in opt.param_groups if any(q is p for q in g["params"]))


def test_lr_scale_gives_matching_parameters_their_own_lr_and_keeps_decay_rules():
    m = Block()
    opt = build_optimizer(
        m, "adamw", {"lr": 1e-3, "weight_decay": 0.01, "lr_scale": {"*.E.weight": 50, "*.F.weight": 50}}
    )
    for p in (m.mix.E.weight, m.mix.F.weight):
        assert group_of(opt, p)["lr"] == pytest.approx(5e-2) and group_of(opt, p)["weight_decay"] == 0.01
    assert group_of(opt, m.mix.q_proj.weight)["lr"] == pytest.approx(1e-3)
    assert group_of(opt, m.mix.q_proj.bias)["weight_decay"] == 0.0
    assert group_of(opt, m.norm.weight)["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    # the schedule scales every group by the same factor
    sched = build_scheduler(opt, "warmup_exp", {"warmup_steps": 4}, 10)
    opt.step()
    sched.step()
    ratios = {round(g["lr"] / g["initial_lr"], 9) for g in opt.param_groups}
    assert len(ratios) == 1 and ratios.pop() == pytest.approx(0.5)


def test_an_lr_scale_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"match no parameter.*\*\.G\.weight"):
        build_optimizer(Block(), "adamw", {"lr": 1e-3, "lr_scale": {"*.G.weight": 10}})


def test_without_lr_scale_two_groups_as_before():
    opt = build_optimizer(Block(), "adamw", {"lr": 1e-3, "weight_decay": 0.01})
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)
