"""ASRDataset with a tokenizer counts the transcript symbols outside the token list once, at construction:
a warning naming them, an error (DataDirError) above max_unk_share of the tokens."""

import logging

import pytest

from cald_asr.data.dataset import ASRDataset
from cald_asr.data.kaldi_dir import DataDirError, read_kv, write_kv
from cald_asr.text import CharTokenizer, TokenList

from datalayer_util import write_yesno_dir

YESNO_TOKENS = TokenList.build(["<space>", "E", "N", "O", "S", "Y"])


@pytest.fixture
def yesno_dir(tmp_path):
    d = tmp_path / "train"
    write_yesno_dir(d, 4)
    return d


def set_text(d, index, text):
    texts = read_kv(d / "text")
    texts[sorted(texts)[index]] = text
    write_kv(d / "text", texts)
    return sum(len(CharTokenizer().text2tokens(t)) for t in read_kv(d / "text").values())


def test_a_few_unknown_symbols_are_a_warning(yesno_dir, caplog):
    n = set_text(yesno_dir, 1, "NO NO YES NO Q YES NO Z")  # 2 of the 4 x ~27 tokens
    tok = CharTokenizer(YESNO_TOKENS)
    with caplog.at_level(logging.WARNING, logger="cald_asr.data.dataset"):
        ds = ASRDataset(yesno_dir, tok, max_unk_share=0.02)
    assert [r.getMessage() for r in caplog.records] == [
        f"{yesno_dir / 'text'}: 2 of {n} tokens ({200 / n:.2f} %) are not in the token list and become <unk>: "
        "'Q' x1, 'Z' x1"
    ]
    item = ds[1]
    assert item["text_ids"].tolist() == tok.encode("NO NO YES NO Q YES NO Z")
    assert item["text_ids"].tolist().count(1) == 2


def test_more_than_max_unk_share_is_an_error_naming_file_and_symbols(yesno_dir):
    n = set_text(yesno_dir, 0, "QQQ NO")
    with pytest.raises(DataDirError) as e:
        ASRDataset(yesno_dir, CharTokenizer(YESNO_TOKENS))  # default limit: 1 % of the tokens
    assert str(e.value) == (
        f"{yesno_dir / 'text'}: 3 of {n} tokens ({300 / n:.2f} %) are not in the token list and become <unk>: "
        "'Q' x3; that is more than max_unk_share=0.01 (1 % of the tokens): the token list does not fit this data "
        "(build it from this data's transcripts, or raise max_unk_share; null/None turns the check off)"
    )
    assert ASRDataset(yesno_dir, CharTokenizer(YESNO_TOKENS), max_unk_share=None)[0]["text_ids"].tolist()[:3] == [1] * 3
    with pytest.raises(ValueError, match=r"max_unk_share must be a share in \[0, 1\]"):
        ASRDataset(yesno_dir, CharTokenizer(YESNO_TOKENS), max_unk_share=5)


def test_no_warning_when_every_symbol_is_known(yesno_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="cald_asr.data.dataset"):
        ASRDataset(yesno_dir, CharTokenizer(YESNO_TOKENS), max_unk_share=0.0)
    assert caplog.records == []
