"""Movie reviews preparation on the real 2,000 reviews: the seeded, stratified 1,600/200/200 split, its
determinism, and the review text."""

import pytest

from cald_asr.corpora import movie_reviews
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.kaldi_dir import read_kv

from shared_data import SHARED_DATA


@pytest.fixture(scope="module")
def mr_dir():
    path = SHARED_DATA / "movie_reviews"
    if not (path / "pos").is_dir():
        pytest.skip(f"shared corpus {path} not present")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mr_dir):
    data = tmp_path_factory.mktemp("mr") / "data"
    return data, movie_reviews.prepare_movie_reviews(mr_dir, data, seed=2024)


def test_counts_balance_and_disjoint_sets(prepared, mr_dir):
    data, counts = prepared
    assert counts == {"train": 1600, "dev": 200, "test": 200}
    sets = {s: read_kv(data / s / "label") for s in counts}
    for s, labels in sets.items():
        assert sum(v == "positive" for v in labels.values()) == counts[s] // 2, f"{s} is stratified"
        assert all(v == {"pos": "positive", "neg": "negative"}[u.split("-")[1]] for u, v in labels.items())
    ids = [u for labels in sets.values() for u in labels]
    files = {f"mr-{d}-{p.stem}" for d in ("pos", "neg") for p in (mr_dir / d).glob("*.txt")}
    assert len(ids) == len(set(ids)) == 2000 and set(ids) == files


def test_split_is_seeded(prepared, mr_dir, tmp_path):
    data, _ = prepared
    movie_reviews.prepare_movie_reviews(mr_dir, tmp_path / "same", seed=2024)
    movie_reviews.prepare_movie_reviews(mr_dir, tmp_path / "other", seed=7)
    for s in ("train", "dev", "test"):
        for f in ("text", "label"):
            assert (tmp_path / "same" / s / f).read_bytes() == (data / s / f).read_bytes()
    assert set(read_kv(tmp_path / "other" / "test" / "label")) != set(read_kv(data / "test" / "label"))


def test_review_text_is_the_file_on_one_line(prepared, mr_dir):
    data, _ = prepared
    text = read_kv(data / "test" / "text")
    utt = sorted(text)[0]
    raw = (mr_dir / utt.split("-")[1] / f"{utt.split('-', 2)[2]}.txt").read_text(encoding="utf-8")
    assert raw.count("\n") > 5 and text[utt] == " ".join(raw.split())


def test_missing_class_folder_and_empty_review(tmp_path):
    (tmp_path / "pos").mkdir()
    with pytest.raises(CorpusError, match=r"neg: missing; expected the polarity v2.0 reviews"):
        movie_reviews.list_reviews(tmp_path)
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(CorpusError, match=r"empty.txt: empty review"):
        movie_reviews.read_review(tmp_path / "empty.txt")
