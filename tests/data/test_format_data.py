import os

import kaldiio
import numpy as np
import soundfile as sf

from cald_asr.bin.format_data import main as format_main
from cald_asr.data.audio import load_audio, resample
from cald_asr.data.kaldi_dir import read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import validate_data_dir

from datalayer_util import AN4_FEAT, FSDD, read_an4_mfcc, write_fsdd_dir

NAMES = ["0_george_0", "1_george_0", "2_jackson_0", "5_theo_3"]


def snr_db(ref, est):
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def add_utt(d, utt, spec, text, spk):
    for name, value in (("wav.scp", spec), ("text", text), ("utt2spk", spk)):
        table = read_kv(d / name, allow_empty_value=True)
        table[utt] = value
        write_kv(d / name, table)
    write_kv(d / "spk2utt", utt2spk_to_spk2utt(read_kv(d / "utt2spk")))


def dropped_log(out):
    return dict(line.split(" ", 1) for line in (out / "dropped.log").read_text().splitlines())


def run(in_dir, out_dir, *extra):
    return format_main(["--in_dir", str(in_dir), "--out_dir", str(out_dir), "--fs", "16000", *extra])


def test_real_fsdd_with_missing_and_corrupt_entries(tmp_path, capsys):
    src = tmp_path / "in"
    wavs = write_fsdd_dir(src, NAMES)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(64))  # header cut short, then noise
    add_utt(src, "nicolas_4_0", str(tmp_path / "missing.wav"), "four", "nicolas")
    add_utt(src, "theo_7_0", str(corrupt), "seven", "theo")
    out = tmp_path / "out"
    assert run(src, out, "--nj", "2") == 0
    summary = capsys.readouterr().out
    assert "kept 4 of 6 utterance(s)" in summary and "dropped 2 (broken audio 2)" in summary

    log = dropped_log(out)
    assert set(log) == {"nicolas_4_0", "theo_7_0"}
    assert log["nicolas_4_0"] == f"broken audio: '{tmp_path / 'missing.wav'}': file does not exist"
    assert log["theo_7_0"].startswith(f"broken audio: '{corrupt}': not a readable audio file")

    assert validate_data_dir(out, check_audio=True) == []
    assert read_kv(out / "text") == {u: t for u, t in read_kv(src / "text").items() if u in wavs}
    assert read_kv(out / "spk2utt") == {"george": "george_0_0 george_1_0", "jackson": "jackson_2_0", "theo": "theo_5_3"}
    num_samples = read_kv(out / "utt2num_samples")
    for utt, path in read_kv(out / "wav.scp").items():
        assert path == str(out.absolute() / "data" / f"{utt}.wav")
        info = sf.info(path)
        assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)
        assert info.frames == int(num_samples[utt]) == 2 * sf.info(wavs[utt]).frames
        original, _ = load_audio(str(wavs[utt]))
        back = resample(load_audio(path)[0], 16000, 8000)
        assert snr_db(original[200:-200], back[200:-200]) > 30


def test_filter_drops_short_long_and_empty_text(tmp_path):
    names = ["0_george_0", "1_george_0", "2_jackson_0", "5_theo_3", "9_lucas_1", "6_nicolas_2"]
    src = tmp_path / "in"
    wavs = write_fsdd_dir(src, names)
    dur = {u: sf.info(p).duration for u, p in wavs.items()}
    by_len = sorted(dur, key=dur.get)
    min_sec = (dur[by_len[0]] + dur[by_len[1]]) / 2
    max_sec = (dur[by_len[-2]] + dur[by_len[-1]]) / 2
    text = read_kv(src / "text")
    text[by_len[2]] = ""
    write_kv(src / "text", text)

    out = tmp_path / "train"
    assert run(src, out, "--filter", "--min_sec", str(min_sec), "--max_sec", str(max_sec), "--nj", "1") == 0
    log = dropped_log(out)
    assert set(log) == {by_len[0], by_len[-1], by_len[2]}
    assert log[by_len[0]].startswith("too short: ")
    assert log[by_len[-1]].startswith("too long: ")
    assert log[by_len[2]].startswith("empty text")
    assert sorted(read_kv(out / "wav.scp")) == sorted(by_len[1:2] + by_len[3:-1])
    assert validate_data_dir(out, check_audio=True) == []

    test_out = tmp_path / "test"  # no --filter: lengths are not checked; the empty transcript still goes
    assert run(src, test_out, "--min_sec", str(min_sec), "--max_sec", str(max_sec)) == 0
    assert set(dropped_log(test_out)) == {by_len[2]}
    assert len(read_kv(test_out / "wav.scp")) == len(names) - 1


def test_pipe_entries_and_segments(tmp_path):
    a, b = FSDD / "3_yweweler_0.wav", FSDD / "8_yweweler_0.wav"
    xa, fs = load_audio(str(a))
    xb, _ = load_audio(str(b))
    rec = tmp_path / "session.wav"
    sf.write(rec, np.concatenate([xa, xb]), fs, subtype="PCM_16")
    end_a = len(xa) / fs
    src = tmp_path / "in"
    write_kv(src / "wav.scp", {"yweweler_session": f"cat {rec} |"})
    write_kv(
        src / "segments",
        {
            "yweweler_a": f"yweweler_session 0.000 {end_a:.4f}",
            "yweweler_b": f"yweweler_session {end_a:.4f} {end_a + len(xb) / fs:.4f}",
            "yweweler_c": f"yweweler_session 0.5 {end_a + len(xb) / fs + 3:.4f}",
        },
    )
    write_kv(src / "text", {"yweweler_a": "three", "yweweler_b": "eight", "yweweler_c": "too long"})
    write_kv(src / "utt2spk", {u: "yweweler" for u in ("yweweler_a", "yweweler_b", "yweweler_c")})
    write_kv(src / "spk2utt", {"yweweler": "yweweler_a yweweler_b yweweler_c"})
    assert validate_data_dir(src) == []
    out = tmp_path / "out"
    assert run(src, out) == 0
    assert dropped_log(out)["yweweler_c"].startswith("bad segment: ends at")
    assert validate_data_dir(out, check_audio=True) == []
    for utt, original in (("yweweler_a", xa), ("yweweler_b", xb)):
        y, fs_out = load_audio(read_kv(out / "wav.scp")[utt])
        assert fs_out == 16000 and abs(len(y) - 2 * len(original)) <= 1
        back = resample(y, 16000, 8000)[: len(original)]
        assert snr_db(original[200:-200], back[200:-200]) > 30


def test_resumable_and_force(tmp_path, capsys):
    src = tmp_path / "in"
    write_fsdd_dir(src, NAMES[:2])
    out = tmp_path / "out"
    assert run(src, out) == 0
    done, wav = out / ".done", out / "data" / "george_0_0.wav"
    stamp = (done.stat().st_mtime_ns, wav.stat().st_mtime_ns)
    capsys.readouterr()
    assert run(src, out) == 0
    assert "up to date" in capsys.readouterr().out
    assert (done.stat().st_mtime_ns, wav.stat().st_mtime_ns) == stamp

    assert run(src, out, "--max_sec", "20") == 0  # other options: the old output does not count
    assert "kept 2 of 2" in capsys.readouterr().out
    assert run(src, out, "--max_sec", "20", "--force") == 0
    assert "kept 2 of 2" in capsys.readouterr().out
    future = done.stat().st_mtime + 10
    os.utime(src / "text", (future, future))  # input changed after the last run
    assert run(src, out, "--max_sec", "20") == 0
    assert "kept 2 of 2" in capsys.readouterr().out


def test_feats_scp_from_real_an4_mfcc(tmp_path, capsys):
    files = sorted((AN4_FEAT / "fash").glob("*.mfc"))[:5]
    mats = {f"fash_{p.stem}": read_an4_mfcc(p) for p in files}
    src = tmp_path / "in"
    src.mkdir()
    kaldiio.save_ark(str(src / "feats.ark"), {u: mats[u] for u in sorted(mats)}, scp=str(src / "feats.scp"))
    scp = read_kv(src / "feats.scp")
    scp["fash_zbroken"] = f"{tmp_path / 'gone.ark'}:12"
    mats_text = {u: "some words" for u in scp}
    write_kv(src / "feats.scp", scp)
    write_kv(src / "text", mats_text)
    write_kv(src / "utt2spk", {u: "fash" for u in scp})
    write_kv(src / "spk2utt", {"fash": " ".join(sorted(scp))})
    frames = {u: m.shape[0] for u, m in mats.items()}
    shortest = min(frames, key=frames.get)
    min_sec = (sorted(frames.values())[0] + sorted(frames.values())[1]) / 2 * 0.010

    out = tmp_path / "out"
    assert run(src, out, "--filter", "--min_sec", str(min_sec), "--frame_shift_ms", "10") == 0
    log = dropped_log(out)
    assert set(log) == {shortest, "fash_zbroken"}
    assert log[shortest].startswith("too short:") and f"({frames[shortest]} frames at 10.0 ms)" in log[shortest]
    assert log["fash_zbroken"].startswith("broken features: utterance 'fash_zbroken': feature file")
    assert validate_data_dir(out, check_audio=True) == []
    kept = sorted(set(mats) - {shortest})
    out_scp = read_kv(out / "feats.scp")
    assert list(out_scp) == kept
    for u in kept:
        assert out_scp[u].startswith(str((out / "feats.ark").absolute()) + ":")
        np.testing.assert_array_equal(kaldiio.load_mat(out_scp[u]), mats[u])
    assert read_kv(out / "utt2num_frames") == {u: str(frames[u]) for u in kept}
    assert read_kv(out / "feats_shape") == {u: f"{frames[u]},13" for u in kept}
    assert (out / "feats_type").read_text() == "extracted\n"
    assert "kept 4 of 6" in capsys.readouterr().out


def test_invalid_input_dir_is_rejected_with_file_and_line(tmp_path, capsys):
    src = tmp_path / "in"
    write_fsdd_dir(src, NAMES)
    text = read_kv(src / "text")
    text["zed_0_0"] = "zero"
    write_kv(src / "text", text)
    assert run(src, tmp_path / "out") == 1
    assert f"{src / 'text'}:5: utterance 'zed_0_0' has no entry in wav.scp" in capsys.readouterr().err


def test_nothing_left_fails(tmp_path, capsys):
    src = tmp_path / "in"
    write_kv(src / "wav.scp", {"spk_a": str(tmp_path / "gone.wav")})
    write_kv(src / "text", {"spk_a": "a"})
    write_kv(src / "utt2spk", {"spk_a": "spk"})
    write_kv(src / "spk2utt", {"spk": "spk_a"})
    assert run(src, tmp_path / "out") == 1
    assert "no utterance left" in capsys.readouterr().err
    assert not (tmp_path / "out" / ".done").exists()
    assert "spk_a broken audio" in (tmp_path / "out" / "dropped.log").read_text()
