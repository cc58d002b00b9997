"""AN4 preparation from the real Sphinx MFCC files: features, sets, transcripts, errors."""

import shutil
import struct

import kaldiio
import numpy as np
import pytest

from cald_asr.corpora import an4
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import read_kv


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, an4_dir):
    data = tmp_path_factory.mktemp("an4") / "data"
    counts = an4.prepare_an4(an4_dir, data, seed=2024)
    return data, counts


def raw_transcripts(path):
    out = {}
    for line in path.read_text().splitlines():
        text, utt = line.rsplit(" (", 1)
        out[utt.rstrip(")")] = text
    return out


def test_counts_and_speakers(prepared, an4_dir):
    data, counts = prepared
    assert counts == {"train_nodev": 848, "train_dev": 100, "test": 130}
    spk = {s: set(read_kv(data / s / "utt2spk").values()) for s in counts}
    assert spk["train_dev"].isdisjoint(spk["train_nodev"])  # dev speakers are held out
    assert len(spk["test"]) == 10
    train_ids = [line.strip() for line in (an4_dir / "etc" / "an4_train.fileids").read_text().split()]
    expected = {f"{fid.split('/')[1]}-{fid.split('/')[2]}" for fid in train_ids}
    got = set(read_kv(data / "train_nodev" / "text")) | set(read_kv(data / "train_dev" / "text"))
    assert got == expected and len(expected) == 948


def test_ids_and_transcripts(prepared, an4_dir):
    data, _ = prepared
    text = {**read_kv(data / "train_nodev" / "text"), **read_kv(data / "train_dev" / "text")}
    utt2spk = {**read_kv(data / "train_nodev" / "utt2spk"), **read_kv(data / "train_dev" / "utt2spk")}
    assert text["fash-an251-fash-b"] == "YES"
    raw = raw_transcripts(an4_dir / "etc" / "an4_train.transcription")
    for utt, words in text.items():
        spk, name = utt.split("-", 1)
        assert words == raw[name] and words == words.upper()
        assert utt2spk[utt] == spk
    test_raw = raw_transcripts(an4_dir / "etc" / "an4_test.transcription")
    assert {u.split("-", 1)[1]: t for u, t in read_kv(data / "test" / "text").items()} == test_raw


def test_features_match_raw_bytes(prepared, an4_dir):
    data, _ = prepared
    path = an4_dir / "feat" / "an4_clstk" / "fash" / "an251-fash-b.mfc"
    raw = path.read_bytes()
    n_frames = (len(raw) - 4) // 4 // 13
    t, c = 7, 4
    expected = struct.unpack(">f", raw[4 + (t * 13 + c) * 4 : 8 + (t * 13 + c) * 4])[0]
    feats = an4.read_sphinx_mfcc(path)
    assert feats.shape == (n_frames, 13) and feats.dtype == np.float32
    assert feats[t, c] == np.float32(expected)
    set_name = "train_dev" if "fash-an251-fash-b" in read_kv(data / "train_dev" / "text") else "train_nodev"
    stored = kaldiio.load_scp(str(data / set_name / "feats.scp"))["fash-an251-fash-b"]
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, feats)
    assert int(read_kv(data / set_name / "utt2num_frames")["fash-an251-fash-b"]) == n_frames


def test_num_frames_from_file_sizes(prepared, an4_dir):
    data, _ = prepared
    for set_name, folder in (("train_dev", "an4_clstk"), ("test", "an4test_clstk")):
        frames = read_kv(data / set_name / "utt2num_frames")
        for utt, n in frames.items():
            spk, name = utt.split("-", 1)
            size = (an4_dir / "feat" / folder / spk / f"{name}.mfc").stat().st_size
            assert int(n) == (size - 4) // 52
        scp = read_kv(data / set_name / "feats.scp")
        assert set(scp) == set(frames)
        assert all(v.startswith(str((data / set_name / "feats.ark").resolve()) + ":") for v in scp.values())


def test_dev_speakers_depend_on_seed_only():
    counts = {f"s{i:02d}": n for i, n in enumerate([13] * 60 + [12] * 8 + [14, 14, 9, 9])}
    picks = {seed: an4.pick_dev_speakers(counts, 100, seed) for seed in range(5)}
    for seed, spks in picks.items():
        assert sum(counts[s] for s in spks) == 100
        assert an4.pick_dev_speakers(counts, 100, seed) == spks
    assert len({tuple(p) for p in picks.values()}) > 1
    with pytest.raises(CorpusError, match="exactly 5 utterances"):
        an4.pick_dev_speakers({"a": 3, "b": 3}, 5, 0)


def test_sentence_markers_stripped(tmp_path):
    path = tmp_path / "an4_x.transcription"
    path.write_text("<s> GO STOP </s> (an1-abc-b)\nYES (an2-abc-b)\n")
    assert an4.read_transcription(path) == {"an1-abc-b": "GO STOP", "an2-abc-b": "YES"}


def test_malformed_transcription_line_is_named(tmp_path, an4_dir):
    corpus = tmp_path / "an4"
    shutil.copytree(an4_dir / "etc", corpus / "etc")
    (corpus / "feat").symlink_to(an4_dir / "feat")
    path = corpus / "etc" / "an4_train.transcription"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace("(", "")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=f"{path}:5: expected 'TEXT \\(utt-id\\)'"):
        an4.prepare_an4(corpus, tmp_path / "data")
    lines[4] = "<s> </s> (an999-fash-b)"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=f"{path}:5: empty transcript"):
        an4.read_transcription(path)


def test_transcript_without_fileid_is_named(tmp_path, an4_dir):
    corpus = tmp_path / "an4"
    shutil.copytree(an4_dir / "etc", corpus / "etc")
    ids = corpus / "etc" / "an4_test.fileids"
    ids.write_text("\n".join(ids.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(CorpusError, match="an4_test.fileids: no entry for 'an406-fcaw-b'"):
        an4.load_part(corpus, "test")


def test_mfcc_size_mismatch_is_named(tmp_path, an4_dir):
    raw = (an4_dir / "feat" / "an4_clstk" / "fash" / "an251-fash-b.mfc").read_bytes()
    cut = tmp_path / "cut.mfc"
    cut.write_bytes(raw[:-8])
    with pytest.raises(CorpusError, match=f"{cut}: header says"):
        an4.read_sphinx_mfcc(cut)
    odd = tmp_path / "odd.mfc"
    odd.write_bytes(struct.pack(">i", 14) + struct.pack(">14f", *range(14)))
    with pytest.raises(CorpusError, match=f"{odd}: 14 values is not a positive multiple of 13"):
        an4.read_sphinx_mfcc(odd)
    with pytest.raises(CorpusError, match="cannot read"):
        an4.read_sphinx_mfcc(tmp_path / "absent.mfc")


def test_byte_swapped_mfcc_is_accepted(tmp_path, an4_dir):
    path = an4_dir / "feat" / "an4_clstk" / "fash" / "an251-fash-b.mfc"
    big = an4.read_sphinx_mfcc(path)
    little = tmp_path / "le.mfc"
    little.write_bytes(struct.pack("<i", big.size) + big.astype("<f4").tobytes())
    np.testing.assert_array_equal(an4.read_sphinx_mfcc(little), big)
