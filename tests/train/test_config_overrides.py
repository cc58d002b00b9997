"""Command-line overrides of the training config: a nested value reaches the optimiser, an unknown key is
a clear error naming it, and a key that starts like one of asr_train's own options stays an override."""

import pytest
import torch
import yaml

from cald_asr.bin import asr_train
from cald_asr.train.checkpoint import CHECKPOINT_NAME
from train_helpers import build, cald_args, std_args

ONE_STEP = ["--max_steps", 1, "--valid_every", 100]


def test_nested_override_reaches_the_optimiser(yesno, tmp_path):
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *ONE_STEP, "--optim_conf.lr", "3e-4")) == 0
    groups = torch.load(out / CHECKPOINT_NAME, weights_only=True)["optimizer"]["param_groups"]
    assert len(groups) == 2  # with and without weight decay
    for g in groups:
        assert g["initial_lr"] == 3e-4
        assert tuple(g["betas"]) == (0.9, 0.98), "the YAML's other optim_conf keys survive the override"
    # train_teacher.yaml warms up linearly over 20 steps: after one step the lr is 2/20 of the base
    history = torch.load(out / CHECKPOINT_NAME, weights_only=True)["history"]
    assert [h["train/lr"] for h in history if "train/lr" in h] == [pytest.approx(3e-4 * 2 / 20, rel=1e-12)]
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert saved["optim_conf"] == {"lr": 3e-4, "betas": [0.9, 0.98], "eps": 1e-8, "weight_decay": 0.0,
                                   "lr_scale": {}}


def test_unknown_key_is_a_clear_error(yesno, tmp_path, capsys):
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *ONE_STEP, "--no_such_key", "1")) == 1
    err = capsys.readouterr().err
    assert "asr_train: error: unknown option --no_such_key" in err
    assert "optim_conf" in err, "the message lists the known keys"
    assert not out.exists(), "nothing is written for a refused config"


def test_a_key_sharing_a_prefix_with_an_option_stays_an_override(yesno, teacher, tmp_path):
    # --mixer is a config key and also the start of --mixer_config
    cfg, _, fields, _, args = build(cald_args("unguided", yesno, teacher, tmp_path / "run", "--mixer", "bimamba2",
                                              "--mixer_conf.d_state", 8))
    assert args.mixer_config.endswith("bimamba2_tiny.yaml")
    assert cfg["mixer"] == "bimamba2" and cfg["mixer_conf"] == {"d_state": 8, "headdim": 16}
    assert fields["mixer_conf"]["d_state"] == 8


def test_misspelt_nested_key_of_a_fixed_mapping_is_an_error():
    from cald_asr.train.config import ConfigError, apply_overrides
    from cald_asr.train.trainer import DEFAULTS

    with pytest.raises(ConfigError, match=r"unknown option --scheduler_conf.warmup_step \(scheduler_conf keys"):
        apply_overrides(DEFAULTS, ["--scheduler_conf.warmup_step", "500"], DEFAULTS)
    out = apply_overrides(DEFAULTS, ["--scheduler_conf.warmup_steps", "500", "--mixer_conf.d_state", "64"], DEFAULTS)
    assert out["scheduler_conf"]["warmup_steps"] == 500 and out["mixer_conf"] == {"d_state": 64}
