"""unknown_symbols: which transcript symbols become <unk>, how often, out of how many tokens; for char
tokenizers and for sentencepiece (text the model cannot cover, and pieces the token list lacks)."""

import pytest

from cald_asr.text import CharTokenizer, SentencePieceTokenizer, TokenList, train_sentencepiece, unknown_symbols

from an4_transcripts import an4_transcripts


def yesno_chars():
    return CharTokenizer(TokenList.build(["<space>", "E", "N", "O", "S", "Y"]))


def test_char_symbols_outside_the_token_list_are_counted_and_named():
    tok = yesno_chars()
    texts = ["YES NO", "YES Q NO", "QUIZ"]  # Q x2, U x1, I x1, Z x1
    unk = unknown_symbols(tok, texts)
    assert unk.n_tokens == 6 + 8 + 4
    assert unk.counts == {"Q": 2, "I": 1, "U": 1, "Z": 1} and list(unk.counts) == ["Q", "I", "U", "Z"]
    assert unk.ids == [tok.encode(t) for t in texts]
    assert sum(i == 1 for ids in unk.ids for i in ids) == unk.n_unknown == 5
    assert unk.message("dump/train/text") == (
        "dump/train/text: 5 of 18 tokens (27.78 %) are not in the token list "
        "and become <unk>: 'Q' x2, 'I' x1, 'U' x1, 'Z' x1"
    )
    assert unk.as_dict() == {"n_tokens": 18, "n_unknown": 5, "symbols": {"Q": 2, "I": 1, "U": 1, "Z": 1}}


def test_invisible_symbols_are_shown_escaped_and_long_lists_cut():
    tok = yesno_chars()
    unk = unknown_symbols(tok, ["YES\u200bNO"])
    assert unk.symbols() == "'\\u200b' x1"
    many = unknown_symbols(tok, ["abcdefghijklmnopqrstuvwxyz"])
    assert many.symbols().endswith("'t' x1, ... (6 more symbols)")
    assert unknown_symbols(tok, ["YES", "NO NO"]).counts == {}


@pytest.fixture(scope="module")
def an4_bpe(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("spm") / "bpe"
    model = train_sentencepiece(an4_transcripts("train").values(), prefix, vocab_size=40)
    return model, SentencePieceTokenizer(model).pieces()


def test_sentencepiece_text_the_model_cannot_cover(an4_bpe):
    model, pieces = an4_bpe
    tok = SentencePieceTokenizer(model, TokenList.build(pieces))
    unk = unknown_symbols(tok, ["YES 42", "NO"])  # AN4 has no digits: the model's own <unk> covers '42'
    assert unk.counts == {"42": 1}
    assert unk.n_tokens == len(tok.text2tokens("YES 42")) + len(tok.text2tokens("NO"))
    assert unk.ids == [tok.encode("YES 42"), tok.encode("NO")]
    # A token list that happens to hold the uncovered text still gives <unk>: the model never emits it.
    tok_with_42 = SentencePieceTokenizer(model, TokenList.build(pieces + ["42"]))
    ids, lost = tok_with_42.encode_with_unknown("YES 42")
    assert lost == ["42"] and ids.count(tok_with_42.token_list.unk_id) == 1
    assert tok_with_42.encode("YES 42") == ids


def test_sentencepiece_piece_missing_from_the_token_list(an4_bpe):
    model, pieces = an4_bpe
    texts = list(an4_transcripts("test").values())[:50]
    full = SentencePieceTokenizer(model, TokenList.build(pieces))
    assert unknown_symbols(full, texts).counts == {}
    used = [p for ids in unknown_symbols(full, texts).ids for p in full.token_list.ids2tokens(ids)]
    dropped = max(set(used), key=used.count)  # a token list from another model: it lacks a common piece
    tok = SentencePieceTokenizer(model, TokenList.build([p for p in pieces if p != dropped]))
    unk = unknown_symbols(tok, texts)
    assert unk.counts == {dropped: used.count(dropped)}
    assert unk.n_tokens == len(used)
