"""prepare_teacher and convert command lines, as stage 4 and users call them."""

import subprocess
import sys
from pathlib import Path

import torch

from cald_asr.models.model_file import load_model
from cald_asr.text import TokenList

YESNO_TEACHER = Path(__file__).resolve().parents[2] / "egs" / "yesno" / "asr1" / "conf" / "teacher_tiny.yaml"


def run(module, *args):
    return subprocess.run(
        [sys.executable, "-m", f"cald_asr.bin.{module}", *map(str, args)], capture_output=True, text=True
    )


def make_teacher(tmp_path):
    tokens = tmp_path / "tokens.txt"
    TokenList.build(["Y", "E", "S", "N", "O", "<space>"]).save(tokens)
    r = run("prepare_teacher", "--config", YESNO_TEACHER, "--token_list", tokens, "--output_dir", tmp_path / "t")
    assert r.returncode == 0, r.stderr
    return tmp_path / "t", tokens


def test_teacher_then_student_from_the_command_line(tmp_path):
    teacher_dir, tokens = make_teacher(tmp_path)
    r = run(
        "convert",
        "--model_dir",
        teacher_dir,
        "--mixer",
        "bimamba2",
        "--mixer_conf",
        "{d_state: 16, headdim: 16}",
        "--output_dir",
        tmp_path / "s",
    )
    assert r.returncode == 0, r.stderr
    assert "converted 2 token mixer(s) to bimamba2" in r.stdout
    assert "encoder.layers.1.self_attn" in r.stdout
    teacher, _ = load_model(teacher_dir)
    student, config = load_model(tmp_path / "s")
    assert config["mixer"] == "bimamba2" and config["token_list"] == TokenList.load(tokens).tokens
    t, s = teacher.state_dict(), student.state_dict()
    for k in t:
        if ".self_attn." not in k:
            assert torch.equal(t[k], s[k]), k


def test_converting_twice_and_unknown_mixers_are_refused(tmp_path):
    teacher_dir, _ = make_teacher(tmp_path)
    r = run("convert", "--model_dir", teacher_dir, "--mixer", "retnet", "--output_dir", tmp_path / "s")
    assert r.returncode == 1 and "unknown mixer 'retnet'" in r.stderr
    assert (
        run("convert", "--model_dir", teacher_dir, "--mixer", "bimamba", "--output_dir", tmp_path / "s").returncode == 0
    )
    r = run("convert", "--model_dir", tmp_path / "s", "--mixer", "bimamba", "--output_dir", tmp_path / "s2")
    assert r.returncode == 1 and "already converted" in r.stderr


def test_prepare_teacher_reports_a_bad_pretrained_entry(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("model: asr_ctc\nencoder: whisper\npretrained: {format: whisper_onnx}\n")
    tokens = tmp_path / "tokens.txt"
    TokenList.build(["A"]).save(tokens)
    r = run("prepare_teacher", "--config", conf, "--token_list", tokens, "--output_dir", tmp_path / "t")
    assert r.returncode == 1
    assert f"{conf}: unknown pretrained format 'whisper_onnx'" in r.stderr
