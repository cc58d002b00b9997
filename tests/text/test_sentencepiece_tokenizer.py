import pytest

from cald_asr.text import SentencePieceTokenizer, TokenList, build_tokenizer, train_sentencepiece

from an4_transcripts import an4_transcripts


@pytest.fixture(scope="module")
def an4_model(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("spm") / "bpe"
    return train_sentencepiece(an4_transcripts("train").values(), prefix, vocab_size=40)


def test_round_trip_on_an4_test_set(an4_model):
    model = SentencePieceTokenizer(an4_model)
    tok = SentencePieceTokenizer(an4_model, TokenList.build(model.pieces()))
    assert len(tok.token_list) == 40 + 2  # 39 pieces + <unk> (model) + <blank> + <sos/eos>
    multi_char = [p for p in model.pieces() if len(p.lstrip("\u2581")) > 1]
    assert multi_char, "40 pieces on AN4 should learn some whole words"
    for text in an4_transcripts("test").values():
        ids = tok.encode(text)
        assert 1 not in ids
        assert tok.decode(ids) == text
    # Subwords compress: fewer tokens than characters over the whole test set.
    test = list(an4_transcripts("test").values())
    assert sum(len(tok.text2tokens(t)) for t in test) < 0.8 * sum(len(t) for t in test)


def test_unknown_symbols_become_unk(an4_model):
    model = SentencePieceTokenizer(an4_model)
    tok = SentencePieceTokenizer(an4_model, TokenList.build(model.pieces()))
    ids = tok.encode("YES 42")  # AN4 has no digits, only spelled numbers
    assert 1 in ids
    assert tok.decode(ids) == "YES <unk>"


def test_bpe_model_type_and_determinism(tmp_path):
    texts = an4_transcripts("train").values()
    a = train_sentencepiece(texts, tmp_path / "a", vocab_size=35, model_type="bpe")
    b = train_sentencepiece(texts, tmp_path / "b", vocab_size=35, model_type="bpe")
    assert SentencePieceTokenizer(a).pieces() == SentencePieceTokenizer(b).pieces()
    tok = build_tokenizer("bpe", TokenList.build(SentencePieceTokenizer(a).pieces()), bpemodel=a)
    for text in list(an4_transcripts("test").values())[:20]:
        assert tok.decode(tok.encode(text)) == text


def test_vocab_too_large_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"vocab_size=5000 failed: .*Vocabulary size too high"):
        train_sentencepiece(["THREE ONE FOUR", "TWO"], tmp_path / "x", vocab_size=5000)
