"""Stage 7's noisy test sets (python -m cald_asr.bin.make_noisy_set) on real yesno recordings formatted as
stage 2 formats them: the same bytes on every run, exactly the asked SNR per utterance, the same noise
waveform at every SNR, reruns skipped, clipping avoided without changing the SNR, bad input named."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from cald_asr.bin.format_data import main as format_main
from cald_asr.bin.make_noisy_set import main as noisy_main
from cald_asr.data.audio import load_audio
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.data.noisy_dir import PCM16_PEAK, noisy_utterance
from cald_asr.data.validate import validate_data_dir

from datalayer_util import write_yesno_dir


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    """dump/test: six real yesno recordings at 16 kHz, as stage 2 writes them."""
    root = tmp_path_factory.mktemp("noisy")
    write_yesno_dir(root / "data", n=6)
    assert format_main(["--in_dir", str(root / "data"), "--out_dir", str(root / "dump" / "test"), "--nj", "1"]) == 0
    return root / "dump" / "test"


def audio(d):
    return {u: load_audio(p)[0].astype(np.float64) for u, p in read_kv(d / "wav.scp").items()}


def snr_db(x, noise):
    return 10 * np.log10(np.sum(x**2) / np.sum(noise**2))


def test_noisy_copies_have_the_asked_snr_per_utterance_and_the_same_bytes_twice(dump, tmp_path, capsys):
    test = tmp_path / "test"
    shutil.copytree(dump, test)
    assert noisy_main(["--in_dir", str(test), "--snr_db", "20 10", "5"]) == 0
    out = capsys.readouterr().out
    seconds = sum(int(n) for n in read_kv(test / "utt2num_samples").values()) / 16000
    assert (
        f"make_noisy_set: {test} -> {test}_snr10: 6 utterance(s) ({seconds:.1f} s) with white Gaussian noise at "
        "SNR 10 dB (seed 0)"
    ) in out
    clean = audio(test)
    noise = {}
    for k in (20, 10, 5):
        d = tmp_path / f"test_snr{k}"
        assert validate_data_dir(d, check_audio=True) == []
        for name in ("text", "utt2spk", "spk2utt"):
            assert (d / name).read_bytes() == (test / name).read_bytes()
        assert read_kv(d / "utt2num_samples") == read_kv(test / "utt2num_samples")
        noisy = audio(d)
        assert set(noisy) == set(clean)
        for u, x in clean.items():
            # by hand: speech power over the power of what was added (16-bit rounding included)
            assert abs(snr_db(x, noisy[u] - x) - k) < 1e-3, (u, k)
            noise[k, u] = (noisy[u] - x) / np.sqrt(np.mean((noisy[u] - x) ** 2))
    for u in clean:  # one noise waveform per utterance at every SNR, only its gain differs
        assert np.corrcoef(noise[20, u], noise[5, u])[0, 1] > 0.999
    u, v = sorted(clean)[:2]
    n = min(len(clean[u]), len(clean[v]))
    assert abs(np.corrcoef(noise[10, u][:n], noise[10, v][:n])[0, 1]) < 0.01  # utterances get their own noise

    first = {p.name: p.read_bytes() for p in (tmp_path / "test_snr10" / "data").iterdir()}
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10", "--force"]) == 0
    again = tmp_path / "again"
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10", "--out_dir", str(again)]) == 0
    for d in (tmp_path / "test_snr10", again):
        assert {p.name: p.read_bytes() for p in (d / "data").iterdir()} == first


def test_a_rerun_is_skipped_and_other_options_redo(dump, tmp_path, capsys):
    test = tmp_path / "test"
    shutil.copytree(dump, test)
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10"]) == 0
    out = tmp_path / "test_snr10"
    wav = sorted((out / "data").iterdir())[0]
    stamp, before = wav.stat().st_mtime_ns, wav.read_bytes()
    capsys.readouterr()
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10"]) == 0
    assert capsys.readouterr().out == f"make_noisy_set: {out} is up to date with {test} (use --force to redo)\n"
    assert wav.stat().st_mtime_ns == stamp
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10", "--seed", "1"]) == 0
    assert "utterance(s)" in capsys.readouterr().out and wav.read_bytes() != before
    assert json.loads((out / ".done").read_text())["seed"] == 1


def test_a_mixture_that_would_clip_is_scaled_down_whole_and_keeps_its_snr(dump, tmp_path, capsys):
    x = next(iter(audio(dump).values()))
    loud = (x * (0.999 / np.max(np.abs(x)))).astype(np.float32)  # a real utterance at full scale
    y, gain = noisy_utterance(loud, "loud", 0.0, seed=0)
    assert gain < 1 and np.max(np.abs(y)) <= PCM16_PEAK
    assert abs(snr_db(gain * loud.astype(np.float64), y - gain * loud) - 0.0) < 1e-4
    test = tmp_path / "loud"
    shutil.copytree(dump, test)
    path = read_kv(test / "wav.scp")
    first = sorted(path)[0]
    write_kv(test / "wav.scp", {**path, first: str(tmp_path / "loud.wav")})
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="PCM_16")
    assert noisy_main(["--in_dir", str(test), "--snr_db", "0"]) == 0
    assert "; 1 scaled down by up to" in capsys.readouterr().out
    assert np.max(np.abs(audio(tmp_path / "loud_snr0")[first])) <= PCM16_PEAK


def test_bad_input_is_named(dump, tmp_path, capsys):
    test = tmp_path / "test"
    shutil.copytree(dump, test)
    wavs = read_kv(test / "wav.scp")
    victim = sorted(wavs)[2]
    write_kv(test / "wav.scp", {**wavs, victim: str(tmp_path / "gone.wav")})
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10"]) == 1
    err = capsys.readouterr().err
    assert f"make_noisy_set: error: {test / 'wav.scp'}: utterance {victim}: '{tmp_path / 'gone.wav'}'" in err
    assert not (tmp_path / "test_snr10" / ".done").exists()
    assert noisy_main(["--in_dir", str(test), "--snr_db", "ten"]) == 1
    assert "make_noisy_set: error: SNR 'ten' is not a number of dB" in capsys.readouterr().err
    assert noisy_main(["--in_dir", str(test), "--snr_db", "10", "5", "--out_dir", str(tmp_path / "x")]) == 1
    assert "make_noisy_set: error: --out_dir takes one --snr_db, not 2 (10 5)" in capsys.readouterr().err
    feats = tmp_path / "feats"
    feats.mkdir()
    (feats / "feats.scp").write_text("a b.ark:1\n")
    assert noisy_main(["--in_dir", str(feats), "--snr_db", "10"]) == 1
    assert (
        f"make_noisy_set: error: {feats} holds features (feats.scp), not audio: noise is mixed into audio "
        "(--feats_type raw)"
    ) in capsys.readouterr().err
