"""--unlabeled_set in the ASR recipe: stage 1 validates a dir of audio alone, stage 2 formats it without text,
stage 6 first distils the students' mixers on it against the pretrained teacher (task-agnostic CALD), then
trains each strategy's student from those mixers, in a dir that says so; stage 7 finds the students there."""

import shutil

import yaml
from test_recipe_stages import run_recipe

from cald_asr.data.kaldi_dir import read_kv

SHORT = [
    "--train_args",
    "--max_steps 3 --valid_every 3 --snapshot_every 3",
    "--cald_configs",
    "../../../conf/cald/target.yaml",
    "--noise_snrs",
    "",
]


def test_unlabeled_phase_then_students_from_its_mixers(tmp_path):
    r, d = run_recipe("yesno", tmp_path, "--stop_stage", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    unl = d["data"] / "train_unl"
    unl.mkdir()
    shutil.copy(d["data"] / "train_nodev" / "wav.scp", unl / "wav.scp")  # audio alone: no text, no speakers
    r, d = run_recipe("yesno", tmp_path, "--stop_stage", "7", "--unlabeled_set", "train_unl", *SHORT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "task-agnostic CALD" in r.stdout
    dump = d["dump"] / "train_unl"
    assert not (dump / "text").exists() and len(read_kv(dump / "wav.scp")) == 26
    pre = d["exp"] / "cald_unlabeled_bimamba2_tiny_train_unl_char"
    assert "best dev layer loss" in (pre / "train.log").read_text()
    student = d["exp"] / "cald_target_bimamba2_tiny_from_train_unl_char"
    config = yaml.safe_load((student / "best" / "config.yaml").read_text())
    assert config["mixers_from"] == f"{pre}/best"
    assert (student / "best" / "decode_default" / "test_yesno" / "1best_recog" / "text").is_file()


def test_a_missing_unlabeled_dir_is_named(tmp_path):
    r, d = run_recipe("yesno", tmp_path, "--stop_stage", "1", "--unlabeled_set", "nowhere")
    assert r.returncode == 1
    assert f"--unlabeled_set nowhere: no {d['data']}/nowhere/wav.scp" in r.stdout + r.stderr
