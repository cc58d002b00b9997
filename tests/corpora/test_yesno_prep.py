"""yesno preparation on the real 60 recordings: Kaldi's test split, transcripts from names, errors."""

from pathlib import Path

import pytest
import soundfile as sf

from cald_asr.corpora import yesno
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import read_kv


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, yesno_dir):
    data = tmp_path_factory.mktemp("yesno") / "data"
    return data, yesno.prepare_yesno(yesno_dir, data)


def test_counts_and_split(prepared, yesno_dir):
    data, counts = prepared
    assert counts == {"train_nodev": 26, "train_dev": 5, "test_yesno": 29}
    names = {s: {u.split("-", 1)[1] for u in read_kv(data / s / "text")} for s in counts}
    all_names = {p.stem for p in (yesno_dir / "waves_yesno").glob("*.wav")}
    assert len(all_names) == 60
    assert names["train_nodev"] | names["train_dev"] | names["test_yesno"] == all_names
    assert names["train_dev"].isdisjoint(names["train_nodev"])
    # Kaldi's egs/yesno test_yesno: the recordings whose names begin with 1
    assert names["test_yesno"] == {n for n in all_names if n[0] == "1"}


def test_transcripts_from_names(prepared):
    data, counts = prepared
    for set_name in counts:
        text, wav = read_kv(data / set_name / "text"), read_kv(data / set_name / "wav.scp")
        samples = read_kv(data / set_name / "utt2num_samples")
        assert set(read_kv(data / set_name / "utt2spk").values()) == {"yesno"}
        for utt, words in text.items():
            bits = utt.removeprefix("yesno-").split("_")
            assert words.split() == ["YES" if b == "1" else "NO" for b in bits]
            assert Path(wav[utt]).is_absolute() and Path(wav[utt]).name == f"{utt.removeprefix('yesno-')}.wav"
            assert int(samples[utt]) == sf.info(wav[utt]).frames


def test_deterministic(prepared, yesno_dir, tmp_path):
    data, counts = prepared
    yesno.prepare_yesno(yesno_dir, tmp_path / "data")
    for set_name in counts:
        for name in ("text", "wav.scp", "utt2spk", "spk2utt", "utt2num_samples"):
            assert (tmp_path / "data" / set_name / name).read_bytes() == (data / set_name / name).read_bytes()


def test_bad_name_and_missing_dir(tmp_path, yesno_dir):
    with pytest.raises(CorpusError, match="waves_yesno: missing"):
        yesno.prepare_yesno(tmp_path, tmp_path / "data")
    waves = tmp_path / "waves_yesno"
    waves.mkdir()
    (waves / "0_1_1_0_0_1_0_1.wav").symlink_to(yesno_dir / "waves_yesno" / "0_0_0_0_1_1_1_1.wav")
    (waves / "0_1_2_0_0_1_0_1.wav").symlink_to(yesno_dir / "waves_yesno" / "0_0_0_0_1_1_1_1.wav")
    with pytest.raises(CorpusError, match="0_1_2_0_0_1_0_1.wav: file name is not eight 0/1 digits"):
        yesno.prepare_yesno(tmp_path, tmp_path / "data")
