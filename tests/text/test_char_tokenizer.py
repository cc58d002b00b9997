import pytest

from cald_asr.text import CharTokenizer, TokenList, build_tokenizer

from an4_transcripts import an4_transcripts


def test_tokens_of_a_real_digit_transcript():
    tok = CharTokenizer()
    assert tok.text2tokens("three one four") == list("three") + ["<space>"] + list("one") + ["<space>"] + list("four")
    assert tok.tokens2text(tok.text2tokens("three one four")) == "three one four"
    assert tok.text2tokens("  three   one ") == tok.text2tokens("three one")


def test_encode_decode_digit_words():
    words = "zero one two three four five six seven eight nine".split()
    tok = CharTokenizer(TokenList.build(sorted({c for w in words for c in w}) + ["<space>"]))
    ids = tok.encode("three one four")
    assert len(ids) == len("three one four") and 1 not in ids
    assert ids[5] == tok.token_list.token2id["<space>"]
    assert tok.decode(ids) == "three one four"


def test_encode_decode_round_trip_on_an4():
    train, test = an4_transcripts("train"), an4_transcripts("test")
    chars = sorted({c for t in train.values() for c in CharTokenizer().text2tokens(t)})
    tok = CharTokenizer(TokenList.build(chars))
    for text in test.values():
        ids = tok.encode(text)
        assert 1 not in ids  # AN4 test uses no letter missing from train
        assert tok.decode(ids) == text


def test_unknown_characters_and_specials():
    tok = CharTokenizer(TokenList.build(list("onetw") + ["<space>"]))
    ids = tok.encode("one two x")
    assert ids[-1] == 1 and tok.decode(ids) == "one two <unk>"
    blank, sos = tok.token_list.blank_id, tok.token_list.sos_eos_id
    assert tok.decode([blank] + tok.encode("one") + [sos]) == "one"


def test_encode_needs_a_token_list():
    with pytest.raises(ValueError, match="has no token list"):
        CharTokenizer().encode("one")


def test_build_tokenizer(tmp_path):
    TokenList.build(list("abc")).save(tmp_path / "tokens.txt")
    tok = build_tokenizer("char", tmp_path / "tokens.txt")
    assert tok.decode(tok.encode("cab")) == "cab"
    with pytest.raises(ValueError, match="bpemodel"):
        build_tokenizer("bpe", tmp_path / "tokens.txt")
