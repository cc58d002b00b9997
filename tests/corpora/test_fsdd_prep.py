"""FSDD connected-digit preparation on the real recordings: split, transcripts, audio, determinism, errors."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cald_asr.corpora import fsdd
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import c_sort_key, read_kv

WORDS = "zero one two three four five six seven eight nine".split()
RATE = 8000
GAP_MIN, GAP_MAX = int(0.050 * RATE), int(0.300 * RATE)
EDGE = int(0.100 * RATE)
CONNECTED = ("train", "dev", "test")
INDEX_RANGE = {
    "train": range(10, 50),
    "dev": range(5, 10),
    "test": range(0, 5),
    "test_isolated": range(0, 5),
    "test_long": range(0, 5),
}
PER_UTT_FILES = ("wav.scp", "text", "utt2spk", "utt2num_samples", "utt2sources", "utt2onsets")


def parse(name):
    digit, spk, index = name.split("_")
    return int(digit), spk, int(index)


def listing(fsdd_dir):
    return sorted(p.stem for p in (fsdd_dir / "recordings").glob("*.wav"))


def sources(set_dir):
    return {u: v.split() for u, v in read_kv(set_dir / "utt2sources").items()}


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full(tmp_path_factory, fsdd_dir):
    data = tmp_path_factory.mktemp("fsdd_full") / "data"
    counts = fsdd.prepare_fsdd(fsdd_dir, data, seed=2024)
    return data, counts


def test_counts(full, fsdd_dir):
    data, counts = full
    names = listing(fsdd_dir)
    n_spk = len({parse(n)[1] for n in names})
    expected = {
        "train": n_spk * fsdd.TRAIN_UTTS_PER_SPEAKER,
        "dev": n_spk * fsdd.EVAL_UTTS_PER_SPEAKER,
        "test": n_spk * fsdd.EVAL_UTTS_PER_SPEAKER,
        "test_isolated": sum(parse(n)[2] < 5 for n in names),
        "test_long": 2 * n_spk,
    }
    assert counts == expected
    assert (n_spk, expected["train"], expected["test_isolated"]) == (6, 3000, 300)
    for set_name, n in expected.items():
        assert len(read_kv(data / set_name / "text")) == n


def test_kaldi_files_sorted_and_consistent(full):
    data, _ = full
    for set_name in fsdd.SET_NAMES:
        set_dir = data / set_name
        keys = None
        for name in PER_UTT_FILES + ("spk2utt",):
            lines = (set_dir / name).read_text().splitlines()
            file_keys = [line.split(" ", 1)[0] for line in lines]
            assert file_keys == sorted(set(file_keys), key=c_sort_key), f"{set_name}/{name} not C-sorted/unique"
            if name != "spk2utt":
                assert keys is None or file_keys == keys, f"{set_name}/{name} keys differ"
                keys = file_keys
        utt2spk = read_kv(set_dir / "utt2spk")
        spk2utt = {s: v.split() for s, v in read_kv(set_dir / "spk2utt").items()}
        assert sorted(u for us in spk2utt.values() for u in us) == sorted(utt2spk)
        for spk, utts in spk2utt.items():
            assert all(utt2spk[u] == spk and u.startswith(spk + "-") for u in utts)


def test_no_recording_in_two_splits(full, fsdd_dir):
    data, _ = full
    used = {s: {n for names in sources(data / s).values() for n in names} for s in fsdd.SET_NAMES}
    for set_name, names in used.items():
        assert all(parse(n)[2] in INDEX_RANGE[set_name] for n in names), set_name
    eval_used = used["test"] | used["test_isolated"] | used["test_long"]
    assert used["train"].isdisjoint(used["dev"])
    assert used["train"].isdisjoint(eval_used)
    assert used["dev"].isdisjoint(eval_used)
    # every recording of a split appears in its set
    names = listing(fsdd_dir)
    for set_name in ("train", "dev", "test", "test_isolated"):
        assert used[set_name] == {n for n in names if parse(n)[2] in INDEX_RANGE[set_name]}, set_name


def test_transcripts_and_speakers_match_sources(full):
    data, _ = full
    for set_name in fsdd.SET_NAMES:
        text, utt2spk = read_kv(data / set_name / "text"), read_kv(data / set_name / "utt2spk")
        for utt, names in sources(data / set_name).items():
            assert text[utt] == " ".join(WORDS[parse(n)[0]] for n in names)
            assert {parse(n)[1] for n in names} == {utt2spk[utt]}
            if set_name in CONNECTED:
                assert 1 <= len(names) <= 7
            if set_name == "test_isolated":
                digit, spk, index = parse(names[0])
                assert len(names) == 1 and utt == f"{spk}-isolated-{digit}-{index}"
    lengths = [len(n) for n in sources(data / "train").values()]
    assert set(lengths) == set(range(1, 8))


def check_audio(fsdd_dir, wav, names, onsets, n_samples, isolated=False):
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    audio, _ = sf.read(wav, dtype="int16")
    assert audio.size == n_samples
    covered = np.zeros(audio.size, dtype=bool)
    ends = []
    for name, onset in zip(names, onsets):
        src, _ = sf.read(fsdd_dir / "recordings" / f"{name}.wav", dtype="int16")
        np.testing.assert_array_equal(audio[onset : onset + src.size], src)
        covered[onset : onset + src.size] = True
        ends.append(onset + src.size)
    assert not audio[~covered].any(), "non-zero samples outside the source recordings"
    if isolated:
        assert onsets == [0] and ends == [audio.size]
        return 0
    gaps = [onsets[k + 1] - ends[k] for k in range(len(names) - 1)]
    assert onsets[0] == EDGE
    assert all(GAP_MIN <= g <= GAP_MAX for g in gaps), gaps
    parts = sum(e - o for o, e in zip(onsets, ends))
    return audio.size - (EDGE + parts + sum(gaps))  # trailing silence


def test_audio_is_sources_plus_gaps(full, fsdd_dir):
    data, _ = full
    rng = np.random.default_rng(0)
    for set_name in fsdd.SET_NAMES:
        set_dir = data / set_name
        wav, srcs = read_kv(set_dir / "wav.scp"), sources(set_dir)
        onsets = {u: [int(x) for x in v.split()] for u, v in read_kv(set_dir / "utt2onsets").items()}
        n_samples = {u: int(v) for u, v in read_kv(set_dir / "utt2num_samples").items()}
        utts = sorted(wav)
        picked = utts if set_name == "test_long" else [utts[i] for i in rng.choice(len(utts), 25, replace=False)]
        for utt in picked:
            assert Path(wav[utt]).is_absolute()
            tail = check_audio(
                fsdd_dir, wav[utt], srcs[utt], onsets[utt], n_samples[utt], isolated=set_name == "test_isolated"
            )
            if set_name in CONNECTED:
                assert tail == EDGE
                assert wav[utt] == str((data / "local" / "audio" / set_name / f"{utt}.wav").resolve())
            elif set_name == "test_long":
                assert tail >= EDGE
            else:
                assert wav[utt] == str((fsdd_dir / "recordings" / f"{srcs[utt][0]}.wav").resolve())


def test_long_streams(full):
    data, _ = full
    seconds = {u: int(v) / RATE for u, v in read_kv(data / "test_long" / "utt2num_samples").items()}
    spks = set(read_kv(data / "test" / "utt2spk").values())
    assert sorted(seconds) == sorted(f"{s}-long-{k}" for s in spks for k in (1, 2))
    for utt, sec in seconds.items():
        lo, hi = (60, 150) if utt.endswith("-1") else (150, 300)
        assert lo <= sec <= hi, (utt, sec)
    recurring = [u for u, names in sources(data / "test_long").items() if len(names) > len(set(names))]
    assert recurring, "a 60 s+ stream from 50 recordings must reuse some"


def test_deterministic_idempotent_and_seeded(full, fsdd_dir, tmp_path):
    data_full, _ = full
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    fsdd.prepare_fsdd(fsdd_dir, a / "data", seed=2024, speakers=["theo"])
    first = snapshot(a)
    # one speaker's utterances do not depend on which other speakers are prepared
    for set_name in fsdd.SET_NAMES:
        for name in ("text", "utt2sources", "utt2onsets", "utt2num_samples"):
            sub = read_kv(a / "data" / set_name / name)
            assert sub == {u: v for u, v in read_kv(data_full / set_name / name).items() if u.startswith("theo-")}
    stale = a / "data" / "local" / "audio" / "train" / "theo-train-9999.wav"
    stale.write_bytes(b"left over")
    fsdd.prepare_fsdd(fsdd_dir, a / "data", seed=2024, speakers=["theo"])
    assert snapshot(a) == first

    fsdd.prepare_fsdd(fsdd_dir, b / "data", seed=2024, speakers=["theo"])
    second = snapshot(b)
    assert second.keys() == first.keys()
    for rel, content in first.items():
        expected = content.replace(str(a).encode(), str(b).encode()) if rel.name == "wav.scp" else content
        assert second[rel] == expected, rel

    fsdd.prepare_fsdd(fsdd_dir, c / "data", seed=2025, speakers=["theo"])
    for set_name in ("train", "dev", "test", "test_long"):
        assert read_kv(c / "data" / set_name / "utt2sources") != read_kv(a / "data" / set_name / "utt2sources")
    assert read_kv(c / "data" / "test_isolated" / "utt2sources") == read_kv(
        a / "data" / "test_isolated" / "utt2sources"
    )


def test_missing_recordings_dir(tmp_path):
    with pytest.raises(CorpusError, match=f"{tmp_path / 'recordings'}: missing"):
        fsdd.prepare_fsdd(tmp_path, tmp_path / "data")


def test_bad_file_name_is_named(tmp_path, fsdd_dir):
    rec = tmp_path / "recordings"
    rec.mkdir()
    (rec / "0_theo_0.wav").symlink_to(fsdd_dir / "recordings" / "0_theo_0.wav")
    (rec / "zero_theo_1.wav").symlink_to(fsdd_dir / "recordings" / "0_theo_1.wav")
    with pytest.raises(CorpusError, match="zero_theo_1.wav: file name is not"):
        fsdd.prepare_fsdd(tmp_path, tmp_path / "data")


def test_wrong_rate_is_named(tmp_path):
    rec = tmp_path / "recordings"
    rec.mkdir()
    sf.write(rec / "3_ann_7.wav", np.zeros(1600, dtype=np.int16), 16000, subtype="PCM_16")
    with pytest.raises(CorpusError, match=r"3_ann_7.wav: expected 8000 Hz mono, got 16000 Hz"):
        fsdd.read_recordings(tmp_path)


def test_speaker_without_a_split_and_unknown_speaker(tmp_path, fsdd_dir):
    rec = tmp_path / "recordings"
    rec.mkdir()
    for name in ("0_theo_0", "0_theo_7"):
        (rec / f"{name}.wav").symlink_to(fsdd_dir / "recordings" / f"{name}.wav")
    with pytest.raises(CorpusError, match="speaker 'theo' has no train recordings"):
        fsdd.prepare_fsdd(tmp_path, tmp_path / "data")
    with pytest.raises(CorpusError, match=r"speaker\(s\) \['bob'\]"):
        fsdd.read_recordings(tmp_path, speakers=["bob"])


def test_cli_reports_error(tmp_path, capsys):
    assert fsdd.main(["--corpus_dir", str(tmp_path), "--data-dir", str(tmp_path / "data")]) == 1
    assert "recordings: missing" in capsys.readouterr().err


def test_unreadable_wav_is_named(tmp_path):
    rec = tmp_path / "recordings"
    rec.mkdir()
    (rec / "4_ann_2.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(CorpusError, match="4_ann_2.wav: cannot read audio"):
        fsdd.read_recordings(tmp_path)
