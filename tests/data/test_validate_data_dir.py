import os

import numpy as np
import pytest
import soundfile as sf

from cald_asr.bin import validate_data_dir as cli
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.data.validate import fix_data_dir, validate_data_dir

from datalayer_util import FSDD, write_fsdd_dir


def set_wav(d, utt, path):
    wav = read_kv(d / "wav.scp")
    wav[utt] = str(path)
    write_kv(d / "wav.scp", wav)


def line_no(path, key):
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if line.split()[0] == key:
            return i
    raise AssertionError(f"{key} not in {path}")


def test_valid_dir_has_no_problems(small_fsdd_data_dir):
    assert validate_data_dir(small_fsdd_data_dir) == []
    assert validate_data_dir(small_fsdd_data_dir, check_audio=True) == []


def test_missing_audio_file(small_fsdd_data_dir, tmp_path):
    set_wav(small_fsdd_data_dir, "george_1_0", tmp_path / "gone.wav")
    assert validate_data_dir(small_fsdd_data_dir) == []  # existence is only checked with check_audio
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert problems == [
        f"{small_fsdd_data_dir / 'wav.scp'}:2: 'george_1_0': '{tmp_path / 'gone.wav'}': file does not exist"
    ]


def test_unreadable_audio_entry_a_directory(small_fsdd_data_dir, tmp_path):
    set_wav(small_fsdd_data_dir, "george_0_0", tmp_path)
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert len(problems) == 1 and problems[0].startswith(f"{small_fsdd_data_dir / 'wav.scp'}:1: ")
    assert "unreadable (not a regular file)" in problems[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_audio_file_permission(small_fsdd_data_dir, tmp_path):
    locked = tmp_path / "locked.wav"
    locked.write_bytes((FSDD / "0_george_0.wav").read_bytes())
    locked.chmod(0)
    set_wav(small_fsdd_data_dir, "george_0_0", locked)
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert len(problems) == 1 and "permission denied" in problems[0]


def test_not_audio_file(small_fsdd_data_dir, tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("this is a transcript, not audio\n")
    set_wav(small_fsdd_data_dir, "jackson_3_0", fake)
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{small_fsdd_data_dir / 'wav.scp'}:4: 'jackson_3_0': '{fake}': not a readable audio file"
    )


def test_empty_audio_file(small_fsdd_data_dir, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 8000, subtype="PCM_16")
    set_wav(small_fsdd_data_dir, "jackson_2_0", empty)
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert len(problems) == 1 and problems[0].endswith("empty audio (0 samples)")


def test_pipe_entry_runs_only_with_check_audio(small_fsdd_data_dir, tmp_path):
    marker = tmp_path / "ran"
    set_wav(small_fsdd_data_dir, "george_0_0", f"touch {marker}; cat {FSDD / '0_george_0.wav'} |")
    assert validate_data_dir(small_fsdd_data_dir) == []
    assert not marker.exists()
    assert validate_data_dir(small_fsdd_data_dir, check_audio=True) == []
    assert marker.exists()
    set_wav(small_fsdd_data_dir, "george_0_0", f"cat {tmp_path / 'gone.wav'} |")
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    assert len(problems) == 1 and problems[0].startswith(
        f"{small_fsdd_data_dir / 'wav.scp'}:1: 'george_0_0': pipe 'cat {tmp_path / 'gone.wav'} |': command failed "
        "with exit status 1"
    )


def test_utterance_in_text_missing_from_wav_scp(small_fsdd_data_dir):
    wav = read_kv(small_fsdd_data_dir / "wav.scp")
    del wav["george_1_0"]
    write_kv(small_fsdd_data_dir / "wav.scp", wav)
    assert validate_data_dir(small_fsdd_data_dir) == [
        f"{small_fsdd_data_dir / 'text'}:2: utterance 'george_1_0' has no entry in wav.scp"
    ]


def test_utterance_in_wav_scp_missing_from_text(small_fsdd_data_dir):
    text = read_kv(small_fsdd_data_dir / "text")
    del text["jackson_2_0"]
    write_kv(small_fsdd_data_dir / "text", text)
    problems = validate_data_dir(small_fsdd_data_dir)
    assert f"{small_fsdd_data_dir / 'wav.scp'}:3: utterance 'jackson_2_0' is not in text" in problems
    assert f"{small_fsdd_data_dir / 'utt2spk'}:3: utterance 'jackson_2_0' is not in text" in problems


def test_feats_scp_and_text_mismatch(tmp_path):
    import kaldiio

    d = tmp_path / "feats"
    d.mkdir()
    mats = {"spk_a": np.ones((5, 3), np.float32), "spk_b": np.zeros((4, 3), np.float32)}
    kaldiio.save_ark(str(d / "feats.ark"), mats, scp=str(d / "feats.scp"))
    write_kv(d / "text", {"spk_a": "a", "spk_c": "c"})
    write_kv(d / "utt2spk", {"spk_a": "spk", "spk_c": "spk"})
    write_kv(d / "spk2utt", {"spk": "spk_a spk_c"})
    problems = validate_data_dir(d, check_audio=True)
    assert sorted(problems) == sorted(
        [
            f"{d / 'text'}:2: utterance 'spk_c' has no entry in feats.scp",
            f"{d / 'feats.scp'}:2: utterance 'spk_b' is not in text",
        ]
    )


def test_empty_transcript(small_fsdd_data_dir):
    (small_fsdd_data_dir / "text").write_text("george_0_0 zero\ngeorge_1_0\njackson_2_0 two\njackson_3_0 three\n")
    assert validate_data_dir(small_fsdd_data_dir) == [
        f"{small_fsdd_data_dir / 'text'}:2: empty transcript for utterance 'george_1_0'"
    ]


def test_invalid_utf8_line(small_fsdd_data_dir):
    (small_fsdd_data_dir / "text").write_bytes(
        b"george_0_0 zero\ngeorge_1_0 \xff\xfeone\njackson_2_0 two\njackson_3_0 three\n"
    )
    problems = validate_data_dir(small_fsdd_data_dir)
    assert len(problems) == 1
    assert problems[0].startswith(f"{small_fsdd_data_dir / 'text'}:2: not valid UTF-8 (key 'george_1_0')")


def test_duplicate_utterance_id(small_fsdd_data_dir):
    (small_fsdd_data_dir / "text").write_text(
        "george_0_0 zero\ngeorge_1_0 one\ngeorge_1_0 eins\njackson_2_0 two\njackson_3_0 three\n"
    )
    assert validate_data_dir(small_fsdd_data_dir) == [
        f"{small_fsdd_data_dir / 'text'}:3: duplicate key 'george_1_0' (first on line 2)"
    ]


def test_unsorted_file(small_fsdd_data_dir):
    wav = (small_fsdd_data_dir / "wav.scp").read_text().splitlines()
    (small_fsdd_data_dir / "wav.scp").write_text("\n".join([wav[1], wav[0]] + wav[2:]) + "\n")
    assert validate_data_dir(small_fsdd_data_dir) == [
        f"{small_fsdd_data_dir / 'wav.scp'}:2: not sorted (C locale): 'george_0_0' comes after 'george_1_0' on line 1"
    ]


def test_unsorted_uses_c_locale_not_natural_order(tmp_path):
    d = tmp_path / "d"
    write_fsdd_dir(d, ["1_george_9", "1_george_10"])  # C order: george_1_10 < george_1_9 (byte '1' < '9')
    assert validate_data_dir(d) == []
    lines = (d / "text").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["george_1_10", "george_1_9"]


def test_spk2utt_disagrees_with_utt2spk(small_fsdd_data_dir):
    (small_fsdd_data_dir / "spk2utt").write_text("george george_0_0\njackson george_1_0 jackson_2_0 jackson_3_0\n")
    problems = validate_data_dir(small_fsdd_data_dir)
    assert problems == [
        f"{small_fsdd_data_dir / 'spk2utt'}:2: utterance 'george_1_0' is listed under speaker 'jackson' "
        "but utt2spk gives 'george'"
    ]


def test_utterance_missing_from_spk2utt(small_fsdd_data_dir):
    (small_fsdd_data_dir / "spk2utt").write_text("george george_0_0 george_1_0\njackson jackson_2_0\n")
    assert validate_data_dir(small_fsdd_data_dir) == [
        f"{small_fsdd_data_dir / 'utt2spk'}:4: utterance 'jackson_3_0' (speaker 'jackson') is missing from spk2utt"
    ]


def test_missing_required_file(small_fsdd_data_dir):
    (small_fsdd_data_dir / "utt2spk").unlink()
    problems = validate_data_dir(small_fsdd_data_dir)
    assert f"{small_fsdd_data_dir / 'utt2spk'}: missing file" in problems


def test_reports_all_problems_not_only_the_first(small_fsdd_data_dir, tmp_path):
    (small_fsdd_data_dir / "text").write_text(
        "george_0_0 zero\ngeorge_1_0\njackson_2_0 two\njackson_2_0 two\njackson_3_0 three\n"
    )
    set_wav(small_fsdd_data_dir, "jackson_3_0", tmp_path / "gone.wav")
    (small_fsdd_data_dir / "spk2utt").write_text("george george_0_0 george_1_0\njackson jackson_2_0\n")
    problems = validate_data_dir(small_fsdd_data_dir, check_audio=True)
    text = small_fsdd_data_dir / "text"
    assert f"{text}:2: empty transcript for utterance 'george_1_0'" in problems
    assert f"{text}:4: duplicate key 'jackson_2_0' (first on line 3)" in problems
    assert any(
        p.startswith(f"{small_fsdd_data_dir / 'wav.scp'}:4: 'jackson_3_0'") and "does not exist" in p for p in problems
    )
    assert (
        f"{small_fsdd_data_dir / 'utt2spk'}:4: utterance 'jackson_3_0' (speaker 'jackson') is missing from spk2utt"
        in problems
    )
    assert len(problems) == 4


def test_segments_dir_keyed_by_recording(tmp_path):
    d = tmp_path / "seg"
    write_kv(d / "wav.scp", {"george_rec": str(FSDD / "0_george_0.wav")})
    write_kv(
        d / "segments",
        {"george_a": "george_rec 0.00 0.10", "george_b": "george_rec 0.10 0.29", "george_c": "other_rec 0 1"},
    )
    write_kv(d / "text", {"george_a": "a", "george_b": "b", "george_c": "c"})
    write_kv(d / "utt2spk", {u: "george" for u in ("george_a", "george_b", "george_c")})
    write_kv(d / "spk2utt", {"george": "george_a george_b george_c"})
    assert validate_data_dir(d, check_audio=True) == [
        f"{d / 'segments'}:3: segment 'george_c': recording 'other_rec' is not in wav.scp"
    ]


def test_fix_data_dir_drops_bad_utterances_everywhere(small_fsdd_data_dir, tmp_path):
    (small_fsdd_data_dir / "text").write_text("george_0_0 zero\ngeorge_1_0\njackson_2_0 two\njackson_3_0 three\n")
    set_wav(small_fsdd_data_dir, "jackson_3_0", tmp_path / "gone.wav")
    (small_fsdd_data_dir / "spk2utt").write_text("jackson jackson_2_0 jackson_3_0\ngeorge george_0_0\n")  # unsorted
    log = tmp_path / "fix.log"
    dropped = fix_data_dir(small_fsdd_data_dir, log, check_audio=True)
    assert set(dropped) == {"george_1_0", "jackson_3_0"}
    assert "empty transcript" in dropped["george_1_0"] and "does not exist" in dropped["jackson_3_0"]
    assert validate_data_dir(small_fsdd_data_dir, check_audio=True) == []
    for name in ("text", "wav.scp", "utt2spk"):
        assert list(read_kv(small_fsdd_data_dir / name, allow_empty_value=True)) == ["george_0_0", "jackson_2_0"]
    assert read_kv(small_fsdd_data_dir / "spk2utt") == {"george": "george_0_0", "jackson": "jackson_2_0"}
    log_lines = log.read_text().splitlines()
    assert log_lines[0].startswith("# fix_data_dir") and "kept 2" in log_lines[0]
    assert [line.split()[0] for line in log_lines[1:3]] == ["george_1_0", "jackson_3_0"]
    assert (small_fsdd_data_dir / ".backup" / "text").read_text().count("\n") == 4


def test_cli_exit_status_and_fix(small_fsdd_data_dir, tmp_path, capsys):
    set_wav(small_fsdd_data_dir, "george_0_0", tmp_path / "gone.wav")
    assert cli.main([str(small_fsdd_data_dir)]) == 0
    assert cli.main([str(small_fsdd_data_dir), "--check_audio"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{small_fsdd_data_dir / 'wav.scp'}:1:")
    log = tmp_path / "dropped.txt"
    assert cli.main([str(small_fsdd_data_dir), "--check_audio", "--fix", "--log", str(log)]) == 0
    assert log.read_text().splitlines()[1].startswith("george_0_0 ")
    assert cli.main([str(small_fsdd_data_dir), "--check_audio"]) == 0


def test_cli_fix_fails_when_nothing_is_left(tmp_path):
    d = tmp_path / "d"
    write_kv(d / "wav.scp", {"spk_a": str(tmp_path / "gone.wav")})
    write_kv(d / "text", {"spk_a": "a"})
    write_kv(d / "utt2spk", {"spk_a": "spk"})
    write_kv(d / "spk2utt", {"spk": "spk_a"})
    assert cli.main([str(d), "--check_audio", "--fix", "--log", str(tmp_path / "log")]) == 1
    assert read_kv(d / "text") == {"spk_a": "a"}  # left unchanged


def test_fix_with_segments_drops_utterances_of_a_bad_recording(tmp_path):
    d = tmp_path / "seg"
    d.mkdir()
    (d / "wav.scp").write_text(
        f"george_r1 {FSDD / '0_george_0.wav'}\ngeorge_r2 {tmp_path / 'gone.wav'}\ntheo_r3 {FSDD / '7_theo_0.wav'}\n"
    )
    write_kv(
        d / "segments",
        {
            "george_a": "george_r1 0.0 0.1",
            "george_b": "george_r2 0.0 0.1",
            "george_c": "george_r2 0.1 0.2",
            "theo_d": "theo_r3 0.0 0.2",
            "theo_e": "theo_r3 0.2 0.3",
        },
    )
    (d / "text").write_bytes(b"george_a a\ngeorge_b b\ngeorge_c c\ntheo_d \xc3\x28\ntheo_e e\n")
    write_kv(
        d / "utt2spk",
        {"george_a": "george", "george_b": "george", "george_c": "george", "theo_d": "theo", "theo_e": "theo"},
    )
    (d / "spk2utt").write_text("george george_a george_b george_c theo_e\ntheo theo_d\n")
    problems = validate_data_dir(d, check_audio=True)
    assert any(p.startswith(f"{d / 'wav.scp'}:2: 'george_r2'") for p in problems)
    assert any(p.startswith(f"{d / 'text'}:4: not valid UTF-8 (key 'theo_d')") for p in problems)
    assert (
        f"{d / 'spk2utt'}:1: utterance 'theo_e' is listed under speaker 'george' but utt2spk gives 'theo'" in problems
    )
    dropped = fix_data_dir(d, tmp_path / "log", check_audio=True)
    assert set(dropped) == {"george_b", "george_c", "theo_d"}  # theo_e only needed spk2utt regenerated
    assert validate_data_dir(d, check_audio=True) == []
    assert list(read_kv(d / "wav.scp")) == ["george_r1", "theo_r3"]
    assert read_kv(d / "spk2utt") == {"george": "george_a", "theo": "theo_e"}
    assert "# repaired (nothing dropped):" in (tmp_path / "log").read_text()
