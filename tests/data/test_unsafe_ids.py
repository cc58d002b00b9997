"""Ids become file names (stage 2 writes dump/<set>/data/<utt>.wav): an id with '/' or '..' is rejected by
validation in every file that holds it, with file:line, and stage 2 refuses the dir and writes nothing."""

import pytest

from cald_asr.data.format_dir import FormatOptions, format_data_dir
from cald_asr.data.kaldi_dir import DataDirError, read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import fix_data_dir, validate_data_dir

from datalayer_util import YESNO, write_yesno_dir, yesno_names

WHY = "contains '/' or '..' (ids become file names such as dump/<set>/data/<id>.wav and must stay there)"


def with_utt(d, utt, spk="yesno"):
    """Add utterance `utt` (a real yesno recording) to every file of the dir."""
    name = yesno_names(5)[4]
    for file, value in (("wav.scp", str(YESNO / f"{name}.wav")), ("text", "NO"), ("utt2spk", spk)):
        table = read_kv(d / file)
        table[utt] = value
        write_kv(d / file, table)
    write_kv(d / "spk2utt", utt2spk_to_spk2utt(read_kv(d / "utt2spk")))


def line_of(path, key):
    return [line.split()[0] for line in path.read_text().splitlines()].index(key) + 1


def test_utterance_id_with_dot_dot_is_rejected_in_every_file(tmp_path):
    d = tmp_path / "in"
    write_yesno_dir(d, 3)
    with_utt(d, "a/../b")
    problems = validate_data_dir(d)
    assert sorted(problems) == sorted(
        f"{d / f}:{line_of(d / f, 'a/../b')}: utterance id 'a/../b' {WHY}" for f in ("wav.scp", "text", "utt2spk")
    )
    dropped = fix_data_dir(d, tmp_path / "fix.log")
    assert list(dropped) == ["a/../b"]
    assert validate_data_dir(d) == []


def test_speaker_id_with_slash_is_rejected(tmp_path):
    d = tmp_path / "in"
    write_yesno_dir(d, 3)
    with_utt(d, "zz_x", spk="../up")
    assert sorted(validate_data_dir(d)) == sorted(
        [
            f"{d / 'utt2spk'}:4: utterance 'zz_x': speaker id '../up' {WHY}",
            f"{d / 'spk2utt'}:1: speaker id '../up' {WHY}",
        ]
    )


def test_stage2_refuses_and_writes_nothing_outside_the_dump(tmp_path):
    d = tmp_path / "in"
    write_yesno_dir(d, 3)
    with_utt(d, "../../../escaped")  # dump/train/data/../../../escaped.wav is beside dump/
    out = tmp_path / "dump" / "train"
    with pytest.raises(DataDirError) as e:
        format_data_dir(d, out, FormatOptions(fs=16000, nj=1), progress=False)
    assert f"{d / 'text'}:1: utterance id '../../../escaped' {WHY}" in str(e.value)
    assert not list(tmp_path.glob("**/escaped*"))
    assert not out.exists()
