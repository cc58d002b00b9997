"""utils/parse_options.sh: the option syntax every recipe script relies on."""

SCRIPT = """
set -eu
nj=1; test_sets=; use_gpu=false; token_type=char
. utils/parse_options.sh
echo "nj=$nj test_sets=$test_sets use_gpu=$use_gpu token_type=$token_type rest=$*"
"""


def test_dash_and_underscore_spellings_are_the_same(run_bash):
    r = run_bash(SCRIPT, ["--nj", "4", "--test-sets", "a b", "--token_type=bpe"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nj=4 test_sets=a b use_gpu=false token_type=bpe rest="


def test_positional_arguments_are_left_in_place(run_bash):
    r = run_bash(SCRIPT, ["--use-gpu", "true", "data/train", "exp/x"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("use_gpu=true token_type=char rest=data/train exp/x")


def test_double_dash_ends_options(run_bash):
    r = run_bash(SCRIPT, ["--nj", "3", "--", "--not-an-option"])
    assert r.returncode == 0, r.stderr
    assert "nj=3" in r.stdout and r.stdout.strip().endswith("rest=--not-an-option")


def test_unknown_option_fails_and_names_it(run_bash):
    r = run_bash(SCRIPT, ["--nj", "2", "--njobs", "4"])
    assert r.returncode != 0
    assert "unknown option '--njobs'" in r.stderr


def test_boolean_option_rejects_other_values(run_bash):
    r = run_bash(SCRIPT, ["--use_gpu", "yes"])
    assert r.returncode != 0
    assert "'--use_gpu' takes true or false" in r.stderr


def test_missing_value_fails(run_bash):
    r = run_bash(SCRIPT, ["--nj"])
    assert r.returncode != 0
    assert "'--nj' needs a value" in r.stderr


def test_config_file_is_read_before_command_line(run_bash, tmp_path):
    conf = tmp_path / "opts.conf"
    conf.write_text("# comment\n--nj 8\n--token-type bpe\n")
    r = run_bash(SCRIPT, ["--config", str(conf), "--nj", "5"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nj=5 test_sets= use_gpu=false token_type=bpe rest="


def test_help_prints_the_scripts_message(run_bash):
    r = run_bash('help_message="usage: demo"; nj=1; . utils/parse_options.sh; echo never', ["--help"])
    assert r.returncode == 0
    assert r.stdout.strip() == "usage: demo"
