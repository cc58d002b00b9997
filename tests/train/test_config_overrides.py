"""Command-line overrides of the training config: a nested value reaches the optimiser, an unknown key is
a clear error naming it, and a key that starts like one of asr_train's own options stays an override."""

import pytest
import torch
import yaml

from cald_asr.bin import asr_train
from cald_asr.train.checkpoint import CHECKPOINT_NAME

from train_helpers import TEACHER_CONF, build, cald_args, std_args

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
    assert saved["optim_conf"] == {"lr": 3e-4, "betas": [0.9, 0.98], "eps": 1e-8, "weight_decay": 0.0, "lr_scale": {}}


def test_unknown_key_is_a_clear_error(yesno, tmp_path, capsys):
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *ONE_STEP, "--no_such_key", "1")) == 1
    err = capsys.readouterr().err
    assert "asr_train: error: unknown option --no_such_key" in err
    assert "optim_conf" in err, "the message lists the known keys"
    assert not out.exists(), "nothing is written for a refused config"


def test_a_key_sharing_a_prefix_with_an_option_stays_an_override(yesno, teacher, tmp_path):
    # --mixer is a config key and also the start of --mixer_config
    cfg, _, fields, _, args = build(
        cald_args("unguided", yesno, teacher, tmp_path / "run", "--mixer", "bimamba2", "--mixer_conf.d_state", 8)
    )
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


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ('max_steps: "100"\n', "max_steps: expected an integer, got the string '100'"),
        ('specaug: "false"\n', "specaug: expected true or false, got the string 'false'"),
        (
            "scheduler_conf:\n  warmup_step: 10\n",
            "scheduler_conf: unknown key 'warmup_step' (known: decay_steps, final_lr_ratio, warmup_steps)",
        ),
        ("specaug_conf:\n  num_time_masks: 3\n", "specaug_conf: unknown key 'num_time_masks'"),
        (
            "optim_conf:\n  lr_scale: {'*.E.weight': fifty}\n",
            "optim_conf.lr_scale.*.E.weight: expected a number, got the string 'fifty'",
        ),
        ("position_limit: automatic\n", "position_limit: expected an integer or 'auto' or null"),
    ],
)
def test_nested_keys_and_types_of_a_config_file_are_checked(yesno, tmp_path, capsys, yaml_text, message):
    conf = tmp_path / "train.yaml"
    conf.write_text((TEACHER_CONF.read_text() + "\n" + yaml_text).replace("max_steps: 300\n", ""))
    out = tmp_path / "run"
    args = std_args(yesno, out, *ONE_STEP)
    args[args.index("--config") + 1] = str(conf)
    assert asr_train.main(args) == 1
    err = capsys.readouterr().err
    assert f"asr_train: error: {conf}: {message}" in err
    assert not out.exists(), "nothing is written for a refused config"


def test_yaml_numbers_and_override_types(yesno, tmp_path, capsys):
    from cald_asr.train.config import yaml_load

    assert yaml_load("lr: 3e-4") == {"lr": 3e-4}, "YAML 1.2 numbers, not YAML 1.1's string '3e-4'"
    out = tmp_path / "run"
    assert asr_train.main(std_args(yesno, out, *ONE_STEP, "--max_steps", "1.5")) == 1
    assert "command line --max_steps: max_steps: expected an integer, got float 1.5" in capsys.readouterr().err


def test_a_mixer_conf_typo_names_the_file_and_the_mixer(yesno, teacher, tmp_path, capsys):
    mixer = tmp_path / "mixer.yaml"
    mixer.write_text("mixer: bimamba2\nmixer_conf: {d_stat: 16}\n")
    args = cald_args("target", yesno, teacher, tmp_path / "run", *ONE_STEP)
    args[args.index("--mixer_config") + 1] = str(mixer)
    assert asr_train.main(args) == 1
    err = capsys.readouterr().err
    assert f"{mixer} (mixer bimamba2): mixer_conf: unknown key 'd_stat' (known: A_init_range" in err


def test_espnet_key_value_forms_of_a_mapping_option():
    """ESPnet's `--optim_conf lr=3e-4` (and a YAML mapping) set the same keys as `--optim_conf.lr 3e-4`; the
    mapping's other keys stay; a misspelt key or a wrong type is the same error as in the dotted form."""
    from cald_asr.train.config import ConfigError, apply_overrides
    from cald_asr.train.options import OPTION_SPECS
    from cald_asr.train.trainer import DEFAULTS

    dotted = apply_overrides(DEFAULTS, ["--optim_conf.lr", "3e-4", "--augment.noise.prob", "0.5"], DEFAULTS)
    espnet = apply_overrides(DEFAULTS, ["--optim_conf", "lr=3e-4", "--augment", "noise.prob=0.5"], DEFAULTS)
    assert espnet == dotted and espnet["optim_conf"]["lr"] == 3e-4
    assert espnet["optim_conf"]["betas"] == DEFAULTS["optim_conf"]["betas"]
    mapping = apply_overrides(DEFAULTS, ["--optim_conf", "{lr: 3e-4, eps: 1.0e-6}"], DEFAULTS, OPTION_SPECS)
    assert mapping["optim_conf"] == {**DEFAULTS["optim_conf"], "lr": 3e-4, "eps": 1e-6}
    assert apply_overrides(DEFAULTS, ["--mixer_conf", "d_state=64"], DEFAULTS)["mixer_conf"] == {"d_state": 64}
    with pytest.raises(ConfigError, match=r"unknown option --scheduler_conf.warmup_step \(scheduler_conf keys"):
        apply_overrides(DEFAULTS, ["--scheduler_conf", "warmup_step=500"], DEFAULTS)
    with pytest.raises(ConfigError, match=r"optim_conf.lr: expected a number, got the string 'fast'"):
        apply_overrides(DEFAULTS, ["--optim_conf", "lr=fast"], DEFAULTS, OPTION_SPECS)
    # a plain option's value may hold '=' (it is not a mapping)
    assert apply_overrides(DEFAULTS, ["--task", "a=b"], DEFAULTS)["task"] == "a=b"


def test_print_config_prints_the_merged_config_and_help_lists_defaults(capsys):
    """ESPnet's --print_config: the config file, the defaults and the overrides merged, printed as YAML; no
    data or output dir needed. --help lists every training option with its default."""
    assert asr_train.main(["--print_config", "--config", str(TEACHER_CONF), "--optim_conf", "lr=3e-4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    file_cfg = yaml.safe_load(TEACHER_CONF.read_text())
    assert printed["optim_conf"]["lr"] == 3e-4 and printed["max_steps"] == file_cfg["max_steps"]
    assert printed["dist_timeout_s"] == asr_train.DEFAULTS["dist_timeout_s"], "defaults are merged in"
    assert asr_train.main(["--config", str(TEACHER_CONF)]) == 2
    assert "required: --train_data, --valid_data, --output_dir" in capsys.readouterr().err
    text = asr_train.get_parser().format_help()
    assert "--max_steps 1000" in text and "--skip_oom_batches false" in text and "--cache_dtype float16" in text
