"""benchmarks/encoders.py: its FLOP counts against hand counts, its audio streams, and smoke runs on
tiny lengths (a seeded Whisper-shaped teacher and its BiMamba2 conversion, built here; and the FSDD
recipe's trained models where exp/ has them). Times are never asserted: only that every number the
benchmark reports is there and consistent."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from cald_asr.data.audio import load_audio

from shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
FSDD_EXP = ROOT / "egs" / "fsdd" / "asr1" / "exp"
TEACHER = FSDD_EXP / "asr_teacher_whisper_tiny_en_char" / "best"
STUDENT = FSDD_EXP / "cald_target_bimamba2_char" / "best"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


enc = _load("bench_encoders", ROOT / "benchmarks" / "encoders.py")
mixers_bench = _load("bench_mixers", ROOT / "benchmarks" / "mixers.py")

TINY = {
    "model": "asr_ctc",
    "encoder": "whisper",
    "encoder_conf": {"n_mels": 4, "d_model": 8, "n_heads": 2, "n_layers": 1, "ffn_dim": 16},
}
TINY_BIMAMBA2 = {
    **TINY,
    "mixer": "bimamba2",
    "mixer_conf": {"d_state": 4, "headdim": 4, "expand": 1, "chunk_size": 4, "d_conv": 4},
}


def test_flops_of_a_tiny_teacher_by_hand():
    # 10 log-mel frames -> 5 encoder frames (conv2: stride 2)
    f = enc.encoder_flops(TINY, 10)
    assert f["conv1"] == 2 * 10 * 4 * 8 * 3 == 1920  # 10 frames x (4 in x 8 out x 3 taps) MACs
    assert f["conv2"] == 2 * 5 * 8 * 8 * 3 == 1920
    assert f["attn_proj"] == 4 * (2 * 5 * 8 * 8) == 2560  # q, k, v, o
    assert f["attn_scores"] == 2 * (2 * 5 * 5 * 8) == 800  # QK^T and PV over all heads
    assert f["ffn"] == 2 * (2 * 5 * 8 * 16) == 2560
    assert f["total"] == 1920 + 1920 + 2560 + 800 + 2560


def test_flops_of_a_tiny_bimamba2_student_by_hand():
    f = enc.encoder_flops(TINY_BIMAMBA2, 10)
    T, d, n, L = 5, 8, 4, 4
    in_proj = 2 * T * d * (2 * d + 2 * n + 2)  # z, x, B, C and one dt per head (2 heads of 4)
    out_proj = 2 * T * d * d
    conv = 2 * T * (d + 2 * n) * 4  # depthwise over x, B, C, 4 taps
    scan = 2 * T * L * n + 2 * T * L * d + 4 * T * d * n
    assert (in_proj, out_proj, conv, scan) == (2080, 640, 640, 1120)
    assert f["mixer"] == 2 * (2080 + 640 + 640 + 1120)  # two directions
    assert f["total"] == 1920 + 1920 + 8960 + 2560


def test_mixer_counts_agree_with_the_mixer_benchmark():
    T, d = 4000, mixers_bench.D_MODEL
    assert enc.attention_flops(T, d)["attn_proj"] + enc.attention_flops(T, d)[
        "attn_scores"
    ] == mixers_bench.attention_flops(T)
    assert enc.mamba2_flops(T, d) == mixers_bench.mamba2_flops(T)
    assert enc.mamba_flops(T, d) == mixers_bench.mamba_flops(T)
    assert enc.linformer_flops(T, d) == mixers_bench.linformer_flops(T)
    conf = yaml.safe_load((ROOT / "conf" / "mixer" / "bimamba2.yaml").read_text())["mixer_conf"]
    assert enc.mixer_flops("bimamba2", conf, T, d)["mixer"] == mixers_bench.FLOPS["bimamba2"](T)


def test_tiny_en_speed_up_limits():
    """Whisper tiny.en against its BiMamba2 student (d_state 128): the one-pass teacher's FLOPs over
    the student's, and the relation that ties the 5- and 10-minute limits together."""
    spec = enc.SYNTHETIC["tiny_en"]
    teacher = {"model": "asr_ctc", "encoder": "whisper", "encoder_conf": spec["encoder_conf"]}
    student = {**teacher, "mixer": "bimamba2", "mixer_conf": spec["students"]["bimamba2"]}
    r = {
        s: enc.encoder_flops(teacher, s * 100)["total"] / enc.encoder_flops(student, s * 100)["total"]
        for s in (300, 600)
    }
    assert r[600] == pytest.approx(9.28, abs=0.01)
    assert r[300] == pytest.approx(5.00, abs=0.01)
    # ratio(T) = (a + bT) / c, so ratio(5 min) = (ratio(10 min) + a/c) / 2, where a/c is the teacher's
    # linear-in-T cost over the student's (< 1: a mixer costs more than the attention projections)
    t, s = enc.encoder_flops(teacher, 30000), enc.encoder_flops(student, 30000)
    a_over_c = (t["total"] - t["attn_scores"]) / s["total"]
    assert a_over_c < 1
    assert r[300] == pytest.approx((r[600] + a_over_c) / 2, rel=1e-9)


def test_windowed_flops_are_the_sum_over_speech2text_windows():
    n = 6000  # 60 s of log-mel frames: windows of 3000 frames starting every 2500
    wins = enc.feature_windows(n)
    assert [(w.start, w.end) for w in wins] == [(0, 3000), (2500, 5500), (5000, 6000)]
    assert enc.windowed_flops(TINY, n)["total"] == sum(
        enc.encoder_flops(TINY, e - s)["total"] for s, e in [(0, 3000), (2500, 5500), (5000, 6000)]
    )
    assert enc.windowed_flops(TINY, 2900) == enc.encoder_flops(TINY, 2900)  # one window = one pass


def _corpus():
    """The FSDD corpus where the shared data is present, else None: the noise stand-in (as on a GPU machine)."""
    fsdd = SHARED_DATA / "fsdd"
    return fsdd if (fsdd / "recordings").is_dir() else None


def test_audio_stream_cuts(tmp_path):
    corpus = _corpus()
    d = enc.ensure_stream(tmp_path / "audio", 20, corpus, noise=True)
    meta = json.loads((d / "fsdd_test_stream.json").read_text())
    full, _ = load_audio(str(d / "fsdd_test_stream.wav"))
    assert full.size == 20 * enc.FS_STREAM
    parts = meta["parts"]
    gaps = [b[0] - (a[0] + a[1]) for a, b in zip(parts, parts[1:])]
    assert parts[0][0] == enc.FS_STREAM // 10 and min(gaps) >= 400 and max(gaps) <= 2400  # 50-300 ms at 8 kHz
    for seconds in (3, 7.5):
        wav, text = enc.cut(d, seconds)
        assert wav.dtype == np.float32 and wav.shape == (int(seconds * enc.FS_MODEL),)
        kept = [p for p in parts if p[0] + p[1] + enc.FS_STREAM // 10 <= seconds * enc.FS_STREAM]
        if corpus is not None:
            assert text.split() == [enc.DIGIT_WORDS[p[2]] for p in kept] and kept
        # silence after the last kept recording
        assert np.abs(wav[2 * (kept[-1][0] + kept[-1][1]) + 64 :]).max() < 1e-3
    # a second call reuses the stream as written
    assert enc.ensure_stream(tmp_path / "audio", 10, None) == d


def test_word_errors():
    assert enc.word_errors("one two three", "one two three") == 0
    assert enc.word_errors("one two three", "one three") == 1
    assert enc.word_errors("one two three", "four one two three five") == 2
    assert enc.word_errors("", "one") == 1


def _check_result(out, labels, lengths):
    result = json.loads((out / "encoders.json").read_text())
    assert (out / "encoders.md").is_file() and (out / "encoders.png").stat().st_size > 0
    rows = {(r["what"], r["model"], r["seconds"]): r for r in result["rows"]}
    teacher, students = labels
    for s in lengths:
        for what, model in [
            ("encoder", f"{teacher} (one pass)"),
            ("encoder", f"{teacher} (windowed)"),
            ("decode", f"{teacher} (windowed)"),
            ("decode", f"{teacher} (one pass)"),
        ] + [(w, f"{st} (one pass)") for st in students for w in ("encoder", "decode")]:
            r = rows[(what, model, s)]
            assert "error" not in r, r
            assert r["time_s"] > 0 and r["runs"] >= 2 and math.isfinite(r["peak_mem_mb"])
            if what == "encoder":
                cfg = yaml.safe_load((Path(result["models"][r["label"]]["dir"]) / "config.yaml").read_text())
                n_feats = int(s * 100)
                want = enc.windowed_flops(cfg, n_feats) if r["mode"] == "windowed" else enc.encoder_flops(cfg, n_feats)
                assert r["flops"] == want["total"] and r["windows"] == 1
            else:
                assert r["rtf"] == pytest.approx(r["time_s"] / s)
                assert r["ref_words"] >= 0 and r["word_errors"] >= 0
        for st in students:
            e = result["summary"]["per_length"][f"{s:g}"][f"{st} (one pass)"]
            assert e["frac_of_limit"] == pytest.approx(e["speedup"] / e["flop_limit"])
    return result, rows


def test_smoke_run_synthetic(tmp_path):
    """The whole benchmark on 2 and 4 s: a random-weight Whisper-shaped teacher and its BiMamba2
    conversion, built in-process (runs in CI)."""
    out = tmp_path / "out"
    args = [
        "--synthetic",
        "test",
        "--lengths",
        "2",
        "4",
        "--budget",
        "0",
        "--in-process",
        "--noise-audio",
        "--decode-teacher-one-pass",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    ]
    corpus = _corpus()
    if corpus is not None:
        args += ["--corpus-dir", str(corpus)]
    assert enc.main(args) == 0
    result, rows = _check_result(out, ("test_teacher", ["test_bimamba2"]), [2, 4])
    assert result["synthetic"] == "test" and result["audio_source"] == (str(corpus) if corpus else "noise")
    # the student is the teacher with its attention replaced: same front end and FFN FLOPs
    t = rows[("encoder", "test_teacher (one pass)", 4)]["flops_by_part"]
    s = rows[("encoder", "test_bimamba2 (one pass)", 4)]["flops_by_part"]
    assert (t["conv1"], t["conv2"], t["ffn"]) == (s["conv1"], s["conv2"], s["ffn"])


def test_worker_subprocess_measures_memory(tmp_path):
    """A CPU measurement in its own process, as the benchmark runs them by default."""
    made = enc.make_synthetic("test", tmp_path / "models", ["bimamba2"])
    audio = enc.ensure_stream(tmp_path / "audio", 5, None, noise=True)
    r = enc.run_job(
        {
            "what": "encoder",
            "model_dir": str(made["students"][0]),
            "mode": "one_pass",
            "seconds": 5,
            "audio_dir": str(audio),
            "device": "cpu",
            "kernels": None,
            "budget": 0,
        }
    )
    assert "error" not in r, r
    assert r["mem_method"] in ("VmHWM", "ru_maxrss") and r["peak_mem_mb"] >= 0 and r["time_s"] > 0


@pytest.mark.skipif(
    not ((TEACHER / "model.safetensors").is_file() and (STUDENT / "model.safetensors").is_file()),
    reason="the FSDD recipe's trained models (egs/fsdd/asr1/exp, not in git) are absent",
)
def test_smoke_run_fsdd_models(tmp_path):
    fsdd = SHARED_DATA / "fsdd"
    if not (fsdd / "recordings").is_dir():
        pytest.skip(f"{fsdd} not present")
    out = tmp_path / "out"
    assert (
        enc.main(
            [
                "--teacher",
                str(TEACHER),
                "--students",
                str(STUDENT),
                "--lengths",
                "4",
                "--budget",
                "0",
                "--in-process",
                "--decode-teacher-one-pass",
                "--corpus-dir",
                str(fsdd),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    _, rows = _check_result(out, ("asr_teacher_whisper_tiny_en_char", ["cald_target_bimamba2_char"]), [4])
    # trained models read these digits (random ones get every word wrong)
    for model in ("asr_teacher_whisper_tiny_en_char (windowed)", "cald_target_bimamba2_char (one pass)"):
        r = rows[("decode", model, 4)]
        assert r["ref_words"] >= 5 and r["word_errors"] <= 0.3 * r["ref_words"]
