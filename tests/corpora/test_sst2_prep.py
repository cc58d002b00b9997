"""SST-2 preparation on the real TSVs: counts, ids, the seeded training subset, header variants, and
malformed lines reported by file:line."""

import shutil

import pytest

from cald_asr.corpora import sst2
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import read_kv

from shared_data import SHARED_DATA


@pytest.fixture(scope="module")
def sst2_dir():
    path = SHARED_DATA / "sst2"
    if not (path / "train.tsv").is_file():
        pytest.skip(f"shared corpus {path} not present")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sst2_dir):
    data = tmp_path_factory.mktemp("sst2") / "data"
    return data, sst2.prepare_sst2(sst2_dir, data, train_size=2000, seed=0)


def test_counts_labels_and_ids(prepared, sst2_dir):
    data, counts = prepared
    assert counts == {"train": 67349, "dev": 872, "test": 1821, "train_2k": 2000}
    for s in ("train", "dev", "test"):
        text, label = read_kv(data / s / "text"), read_kv(data / s / "label")
        assert set(text) == set(label) and len(text) == counts[s]
        assert set(label.values()) == {"negative", "positive"}
    dev_label = read_kv(data / "dev" / "label")
    assert sum(v == "positive" for v in dev_label.values()) == 444  # GLUE SST-2 dev: 444 positive of 872
    # ids lead back to the file: row n is line n + 1 (after the header)
    lines = (sst2_dir / "dev.tsv").read_text(encoding="utf-8").splitlines()
    label, sentence = lines[5].split("\t")
    assert read_kv(data / "dev" / "text")["sst2-dev-00005"] == " ".join(sentence.split())
    assert dev_label["sst2-dev-00005"] == {"0": "negative", "1": "positive"}[label]


def test_training_subset_is_seeded_and_drawn_from_train(prepared, sst2_dir, tmp_path):
    data, _ = prepared
    train, sub = read_kv(data / "train" / "text"), read_kv(data / "train_2k" / "text")
    train_label, sub_label = read_kv(data / "train" / "label"), read_kv(data / "train_2k" / "label")
    assert all(train[u] == t and train_label[u] == sub_label[u] for u, t in sub.items())
    assert "seed 0" in (data / "train_2k" / "description").read_text()
    again = tmp_path / "again"
    sst2.prepare_sst2(sst2_dir, again, train_size=2000, seed=0)
    for f in ("text", "label"):
        assert (again / "train_2k" / f).read_bytes() == (data / "train_2k" / f).read_bytes()
        assert (again / "dev" / f).read_bytes() == (data / "dev" / f).read_bytes()
    other = tmp_path / "other"
    sst2.prepare_sst2(sst2_dir, other, train_size=2000, seed=1)
    overlap = set(read_kv(other / "train_2k" / "text")) & set(sub)
    assert len(overlap) < 300, "another seed draws another subset (expected overlap about 2000^2/67349 = 59)"


def write_tsv(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_either_header_and_column_order(tmp_path):
    a = write_tsv(tmp_path / "a.tsv", ["label\tsentence", "1\ta  fine   film", "", "0\tdull"])
    b = write_tsv(tmp_path / "b.tsv", ["sentence\tlabel", "a  fine   film\t1", "dull\t0"])
    c = write_tsv(tmp_path / "c.tsv", ["label\tcontent", "1\ta  fine   film", "0\tdull"])
    expected = [(1, "positive", "a fine film"), (2, "negative", "dull")]
    assert sst2.read_tsv(a) == sst2.read_tsv(b) == sst2.read_tsv(c) == expected


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("1\tgood\textra column", "expected 2 tab-separated columns (label, sentence), found 3"),
        ("a sentence without a label", "expected 2 tab-separated columns (label, sentence), found 1"),
        ("2\tsomewhat good", "unknown label '2' (expected 0 or 1)"),
        ("positive\tgood", "unknown label 'positive' (expected 0 or 1)"),
        ("1\t   ", "empty sentence"),
    ],
)
def test_malformed_lines_are_named(tmp_path, bad_line, message):
    tsv = write_tsv(tmp_path / "dev.tsv", ["label\tsentence", "0\tfine", bad_line, "1\tgood"])
    with pytest.raises(CorpusError) as e:
        sst2.read_tsv(tsv)
    assert str(e.value) == f"{tsv}:3: {message}"


def test_bad_header_and_cli_errors(tmp_path, sst2_dir, capsys):
    tsv = write_tsv(tmp_path / "x.tsv", ["text\tscore", "fine\t1"])
    with pytest.raises(CorpusError, match=r"x.tsv:1: header 'text\\tscore' should name two tab-separated columns"):
        sst2.read_tsv(tsv)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for s in ("train", "dev"):
        shutil.copy(sst2_dir / f"{s}.tsv", corpus / f"{s}.tsv")
    write_tsv(corpus / "test.tsv", ["label\tcontent", "0\tfine", "7\tgood"])
    assert sst2.main(["--corpus_dir", str(corpus), "--data_dir", str(tmp_path / "data")]) == 1
    assert f"{corpus / 'test.tsv'}:3: unknown label '7'" in capsys.readouterr().err
