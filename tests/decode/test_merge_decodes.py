"""merge_decodes over real asr_inference job outputs: only the set's keys, all of them, one model."""

import json

from cald_asr.bin.asr_inference import main as decode
from cald_asr.bin.merge_decodes import main as merge
from cald_asr.data.kaldi_dir import read_kv, write_kv


def job(model_dir, scp, out_dir, keys, tmp_path):
    key_file = tmp_path / f"{out_dir.name}.keys"
    key_file.write_text("".join(f"{k}\n" for k in keys))
    return decode(
        [
            "--asr_train_config",
            str(model_dir),
            "--data_path_and_name_and_type",
            f"{scp},speech,sound",
            "--output_dir",
            str(out_dir),
            "--key_file",
            str(key_file),
        ]
    )


def test_only_the_sets_keys_are_merged(teacher_dir, yesno16k, tmp_path, capsys):
    data, wavs, _ = yesno16k
    keys = sorted(wavs)
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    assert job(teacher_dir, data / "wav.scp", p1, keys[:3], tmp_path) == 0
    assert job(teacher_dir, data / "wav.scp", p2, keys[3:], tmp_path) == 0
    the_set = tmp_path / "set.scp"
    write_kv(the_set, {k: wavs[k] for k in keys[:5]})  # the last key was decoded but is not in the set
    assert merge(["--keys", str(the_set), "--output_dir", str(tmp_path / "dec"), str(p1), str(p2)]) == 0
    out = capsys.readouterr().out
    assert "5 utterances, 0 failed, RTF" in out and out.rstrip().endswith(f", 1 not in {the_set} ignored")
    best = read_kv(tmp_path / "dec" / "1best_recog" / "text", allow_empty_value=True)
    assert list(best) == keys[:5]
    assert read_kv(tmp_path / "dec" / "text", allow_empty_value=True) == best, "ESPnet's flat <dir>/text"
    assert read_kv(tmp_path / "dec" / "rtf")["utterances"] == "5"
    fp = json.loads((tmp_path / "dec" / "fingerprint").read_text())
    assert fp == json.loads((p1 / "fingerprint").read_text())

    # a part missing: nothing is written, the missing keys are named
    assert merge(["--keys", str(the_set), "--output_dir", str(tmp_path / "dec2"), str(p1)]) == 1
    err = capsys.readouterr().err
    assert (
        f"merge_decodes: error: {tmp_path / 'dec2'}: 2 utterance(s) of the set are neither decoded nor listed "
        f"as failed in the parts: {keys[3]} {keys[4]}"
    ) in err
    assert not (tmp_path / "dec2" / "1best_recog").exists()


def test_parts_of_different_models_are_refused(teacher_dir, student_dir, yesno16k, tmp_path, capsys):
    data, wavs, _ = yesno16k
    keys = sorted(wavs)
    assert job(teacher_dir, data / "wav.scp", tmp_path / "p1", keys[:3], tmp_path) == 0
    assert job(student_dir, data / "wav.scp", tmp_path / "p2", keys[3:], tmp_path) == 0
    assert (
        merge(
            [
                "--keys",
                str(data / "wav.scp"),
                "--output_dir",
                str(tmp_path / "dec"),
                str(tmp_path / "p1"),
                str(tmp_path / "p2"),
            ]
        )
        == 1
    )
    assert "the parts were decoded with different models or inference configs" in capsys.readouterr().err
    assert not (tmp_path / "dec" / "1best_recog").exists()
