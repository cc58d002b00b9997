"""Stage 2's speed perturbation (format_data --speed_perturb_factors) on real FSDD recordings: one copy per
factor named as Kaldi's utils/perturb_data_dir_speed.sh names it, sox-speed audio of round(n / f) samples,
--filter on the perturbed lengths, drops listed per copy, and the options' errors."""

import json

import kaldiio
import numpy as np
import soundfile as sf

from cald_asr.bin.format_data import main as format_main
from cald_asr.data.audio import load_audio
from cald_asr.data.augment import speed_perturb
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.data.validate import validate_data_dir

from datalayer_util import AN4_FEAT, read_an4_mfcc, write_fsdd_dir

NAMES = ["0_george_0", "1_george_0", "2_jackson_0", "5_theo_3", "9_lucas_1", "6_nicolas_2"]
PREFIX = {0.9: "sp0.9-", 1.0: "", 1.1: "sp1.1-"}


def run(in_dir, out_dir, *extra):
    return format_main(["--in_dir", str(in_dir), "--out_dir", str(out_dir), "--fs", "16000", "--nj", "1", *extra])


def test_copies_per_factor_with_kaldi_ids_and_sox_speed_audio(tmp_path):
    src = tmp_path / "in"
    wavs = write_fsdd_dir(src, NAMES)
    out = tmp_path / "train_sp"
    assert run(src, out, "--speed_perturb_factors", "0.9 1.0 1.1") == 0
    assert validate_data_dir(out, check_audio=True) == []
    text, utt2spk = read_kv(src / "text"), read_kv(src / "utt2spk")
    assert read_kv(out / "text") == {PREFIX[f] + u: t for u, t in text.items() for f in PREFIX}
    assert read_kv(out / "utt2spk") == {PREFIX[f] + u: PREFIX[f] + s for u, s in utt2spk.items() for f in PREFIX}
    n = {u: int(v) for u, v in read_kv(out / "utt2num_samples").items()}
    for u in wavs:
        assert n[u] == 2 * sf.info(wavs[u]).frames  # 8 kHz -> 16 kHz, then perturbed
        original = load_audio(read_kv(out / "wav.scp")[u])[0]
        for f, p in PREFIX.items():
            path = read_kv(out / "wav.scp")[p + u]
            assert n[p + u] == round(n[u] / f) == sf.info(path).frames
            if f != 1.0:
                # tempo and pitch scaled together (sox speed), up to the 16-bit rounding of the original copy
                y = load_audio(path)[0]
                ref = speed_perturb(original, f, 16000)
                assert 10 * np.log10(np.sum(ref**2) / np.sum((ref - y) ** 2)) > 40
    assert (out / "dropped.log").read_text() == ""
    stamp = json.loads((out / ".done").read_text())
    assert stamp["speed_perturb_factors"] == [0.9, 1.0, 1.1]


def test_filter_applies_to_perturbed_lengths_and_drops_are_listed_per_copy(tmp_path, capsys):
    src = tmp_path / "in"
    wavs = write_fsdd_dir(src, NAMES)
    text = read_kv(src / "text")
    empty = sorted(wavs)[0]
    text[empty] = ""
    write_kv(src / "text", text)
    n16 = {u: 2 * sf.info(p).frames for u, p in wavs.items()}
    secs = sorted(round(n16[u] / f) / 16000 for u in wavs if u != empty for f in (0.9, 1.1))
    max_sec = (secs[len(secs) // 2 - 1] + secs[len(secs) // 2]) / 2  # half the copies are longer
    out = tmp_path / "train_sp"
    assert run(src, out, "--filter", "--max_sec", str(max_sec), "--speed_perturb_factors", "0.9 1.1") == 0
    log = dict(line.split(" ", 1) for line in (out / "dropped.log").read_text().splitlines())
    too_long = {PREFIX[f] + u for u in wavs if u != empty for f in (0.9, 1.1) if round(n16[u] / f) / 16000 > max_sec}
    assert len(too_long) == len(secs) // 2
    assert set(log) == too_long | {"sp0.9-" + empty, "sp1.1-" + empty}
    assert all(log[u].startswith("too long: ") and f"> --max_sec {max_sec}" in log[u] for u in too_long)
    assert log["sp0.9-" + empty] == log["sp1.1-" + empty] == "empty text: the transcript is empty"
    kept = set(read_kv(out / "wav.scp"))
    assert kept == {PREFIX[f] + u for u in wavs for f in (0.9, 1.1)} - set(log)  # no original without 1.0
    summary = capsys.readouterr().out
    assert f"kept {len(kept)} of {2 * len(NAMES)} utterance(s)" in summary


def test_copies_are_bit_identical_whatever_the_jobs(tmp_path):
    src = tmp_path / "in"
    write_fsdd_dir(src, NAMES[:3])
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(src, a, "--speed_perturb_factors", "1.1 0.9") == 0
    assert (
        format_main(["--in_dir", str(src), "--out_dir", str(b), "--nj", "2", "--speed_perturb_factors", "1.1 0.9"]) == 0
    )
    for u, path in read_kv(a / "wav.scp").items():
        assert open(path, "rb").read() == open(read_kv(b / "wav.scp")[u], "rb").read(), u


def test_without_factors_the_stamp_of_earlier_dumps_is_kept(tmp_path):
    src = tmp_path / "in"
    write_fsdd_dir(src, NAMES[:2])
    assert run(src, tmp_path / "out") == 0
    assert "speed_perturb_factors" not in json.loads((tmp_path / "out" / ".done").read_text())
    assert read_kv(tmp_path / "out" / "text") == read_kv(src / "text")


def test_bad_factors_and_feature_input_are_refused(tmp_path, capsys):
    src = tmp_path / "in"
    write_fsdd_dir(src, NAMES[:2])
    for factors, message in (
        ("0.9 fast", "--speed_perturb_factors must be numbers separated by spaces, not '0.9 fast'"),
        ("0.9 1 0.90", "--speed_perturb_factors lists 0.9 more than once"),
        ("1.1 -0.9", "--speed_perturb_factors: -0.9 is not a positive speed factor"),
    ):
        assert run(src, tmp_path / "out", "--speed_perturb_factors", factors) == 1
        assert f"ERROR: {message}" in capsys.readouterr().err
    feats = tmp_path / "feats"
    feats.mkdir()
    path = sorted((AN4_FEAT / "fash").glob("*.mfc"))[0]
    kaldiio.save_ark(str(feats / "feats.ark"), {"fash_a": read_an4_mfcc(path)}, scp=str(feats / "feats.scp"))
    write_kv(feats / "text", {"fash_a": "A"})
    write_kv(feats / "utt2spk", {"fash_a": "fash"})
    write_kv(feats / "spk2utt", {"fash": "fash_a"})
    assert run(feats, tmp_path / "out_feats", "--speed_perturb_factors", "0.9 1.1") == 1
    err = capsys.readouterr().err
    assert f"ERROR: --speed_perturb_factors needs audio input (wav.scp); {feats} holds features (feats.scp)" in err
    assert not (tmp_path / "out_feats" / ".done").exists()
