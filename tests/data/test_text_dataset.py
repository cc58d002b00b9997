"""Text data with the teacher's own tokenizer (all-MiniLM-L6-v2's WordPiece): the round trip sentence ->
ids -> text on real SST-2 sentences, stage 2's dump, truncation of real movie reviews to 512 tokens, the
dataset and its collate, and bad label files named by file:line."""

import ast
import unicodedata
from pathlib import Path

import pytest
import torch

from cald_asr.bin.cls_tokenize import main as tokenize_main
from cald_asr.corpora.movie_reviews import prepare_movie_reviews
from cald_asr.corpora.sst2 import read_tsv
from cald_asr.data import text_dataset
from cald_asr.data.kaldi_dir import DataDirError, read_kv
from cald_asr.data.text_dataset import TextDataset, encode, write_text_set
from cald_asr.text.hf_tokenizer import load_text_tokenizer

from shared_data import SHARED_DATA

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_text_tokenizer("default")


@pytest.fixture(scope="module")
def sst2_test():
    path = SHARED_DATA / "sst2" / "test.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return read_tsv(path)


def bert_normalise(text):
    """What the uncased WordPiece model keeps of a sentence: lower case, accents stripped, no spaces."""
    nfd = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in nfd if unicodedata.category(c) != "Mn" and not c.isspace())


def test_round_trip_on_sst2(tokenizer, sst2_test):
    # the first 200 test sentences, plus every one with a non-ASCII character (accents: crème brûlée)
    rows = sst2_test[:200] + [r for r in sst2_test if not r[2].isascii()]
    assert any(not r[2].isascii() for r in rows)
    sentences = [r[2] for r in rows]
    ids = encode(tokenizer, sentences, 512)
    cls, sep, unk = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id
    for sentence, x in zip(sentences, ids):
        assert x[0] == cls and x[-1] == sep and cls not in x[1:-1] and sep not in x[1:-1]
        assert all(0 <= i < tokenizer.vocab_size for i in x)
        if unk in x:
            continue  # a character outside the vocabulary cannot come back
        decoded = tokenizer.decode(x, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        assert bert_normalise(decoded) == bert_normalise(sentence), sentence
        assert encode(tokenizer, [decoded], 512)[0] == x, "decoding then encoding gives the same ids"
    assert sum(unk in x for x in ids) <= 2


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    corpus = SHARED_DATA / "movie_reviews"
    if not (corpus / "pos").is_dir():
        pytest.skip(f"{corpus} not present")
    root = tmp_path_factory.mktemp("mr")
    prepare_movie_reviews(corpus, root / "data", seed=2024)
    assert (
        tokenize_main(
            ["--in_dir", str(root / "data" / "dev"), "--out_dir", str(root / "dump" / "dev"), "--tokenizer", "default"]
        )
        == 0
    )
    return root


def test_stage2_dump_truncates_reviews_to_the_models_512_tokens(reviews, tokenizer):
    dump = reviews / "dump" / "dev"
    text = read_kv(dump / "text")
    ids = {u: [int(i) for i in v.split()] for u, v in read_kv(dump / "token_ids").items()}
    counts = read_kv(dump / "utt2num_tokens")
    assert set(ids) == set(text) == set(counts) and len(ids) == 200
    assert read_kv(dump / "label") == read_kv(reviews / "data" / "dev" / "label")
    full = dict(zip(text, encode(tokenizer, list(text.values()), 10**6)))
    long = [u for u in ids if len(full[u]) > 512]
    assert len(long) > 100, "most reviews are longer than 512 tokens"
    for u, x in ids.items():
        assert int(counts[u]) == len(x) == min(len(full[u]), 512)
        # truncation keeps [CLS] and the first 510 word pieces, and ends in [SEP]
        assert x == (full[u] if len(full[u]) <= 512 else full[u][:511] + [tokenizer.sep_token_id])
    log = (dump / "tokenize.log").read_text()
    assert f"{len(long)} truncated to 512" in log


def test_dataset_reads_the_dump_and_tokenises_alike(reviews, tokenizer):
    from_dump = TextDataset(reviews / "dump" / "dev", LABELS)
    from_text = TextDataset(reviews / "data" / "dev", LABELS, tokenizer=tokenizer, max_length=512)
    assert from_dump.utt_ids == from_text.utt_ids and from_dump.ids == from_text.ids
    assert from_dump.lengths == [len(x) for x in from_dump.ids] and max(from_dump.lengths) == 512
    labels = read_kv(reviews / "data" / "dev" / "label")
    item = from_dump[3]
    assert LABELS[item["label"]] == labels[item["utt_id"]]
    with pytest.raises(DataDirError, match="has 512 tokens, the model takes at most 256"):
        TextDataset(reviews / "dump" / "dev", LABELS, max_length=256)


def test_collate_pads_right_with_lengths_and_labels(tokenizer, tmp_path):
    write_text_set(
        tmp_path / "s",
        {"a": "a fine film", "b": "dull , lifeless and far too long"},
        {"a": "positive", "b": "negative"},
    )
    ds = TextDataset(tmp_path / "s", LABELS, tokenizer=tokenizer)
    batch = ds.collate([ds[0], ds[1]])
    la, lb = ds.lengths
    assert batch["utt_ids"] == ["a", "b"] and batch["labels"].tolist() == [1, 0]
    assert batch["input_lengths"].tolist() == [la, lb] and batch["input_ids"].shape == (2, max(la, lb))
    assert torch.equal(batch["input_ids"][0, :la], torch.tensor(ds.ids[0]))
    assert (batch["input_ids"][0, la:] == 0).all()


def test_unknown_label_and_missing_ids_are_named(tmp_path, tokenizer):
    d = tmp_path / "s"
    write_text_set(d, {"a": "fine", "b": "dull"}, {"a": "positive", "b": "neutral"})
    with pytest.raises(DataDirError) as e:
        TextDataset(d, LABELS, tokenizer=tokenizer)
    assert str(e.value) == (
        f"{d / 'label'}:2: utterance 'b': unknown label 'neutral' (the model's labels: negative, positive)"
    )
    write_text_set(d, {"a": "fine", "b": "dull"}, {"a": "positive", "b": "negative"})
    (d / "token_ids").write_text("a 101 3835 102\nb 101 x 102\n")
    with pytest.raises(DataDirError, match=r"token_ids:2: utterance 'b': token ids must be integers"):
        TextDataset(d, LABELS)


def test_text_data_imports_no_model_code():
    """Data knows no model: the tokenizer is loaded by the text tools (cald_asr.text.hf_tokenizer), so no
    import in the module, at its top or inside a function, reaches cald_asr.models."""
    tree = ast.parse(Path(text_dataset.__file__).read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [m for m in imported if m and m.startswith("cald_asr.models")] == []
