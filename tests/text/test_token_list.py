import pytest

from cald_asr.text.token_list import TokenList, TokenListError


def test_build_save_load_round_trip(tmp_path):
    tl = TokenList.build(["o", "<space>", "e", "o"])  # repeated tokens are kept once, in first order
    assert tl.tokens == ["<blank>", "<unk>", "o", "<space>", "e", "<sos/eos>"]
    assert (tl.blank_id, tl.unk_id, tl.sos_eos_id) == (0, 1, 5)
    tl.save(tmp_path / "tokens.txt")
    assert (tmp_path / "tokens.txt").read_text() == "<blank>\n<unk>\no\n<space>\ne\n<sos/eos>\n"
    assert TokenList.load(tmp_path / "tokens.txt") == tl


def test_without_sos_eos():
    tl = TokenList.build(["a"], add_sos_eos=False)
    assert tl.tokens == ["<blank>", "<unk>", "a"] and tl.sos_eos_id is None


def test_unknown_tokens_map_to_unk():
    tl = TokenList.build(["a", "b"])
    assert tl.tokens2ids(["a", "z", "b"]) == [2, 1, 3]
    assert tl.ids2tokens([3, 1, 0]) == ["b", "<unk>", "<blank>"]
    with pytest.raises(TokenListError, match="token id 9 out of range"):
        tl.ids2tokens([9])


def test_load_errors_name_file_and_line(tmp_path):
    p = tmp_path / "tokens.txt"
    p.write_text("<blank>\n<unk>\na\nb\na\n")
    with pytest.raises(TokenListError, match=rf"{p}:5: duplicate token 'a' \(first on line 3\)"):
        TokenList.load(p)
    p.write_text("<unk>\n<blank>\na\n")
    with pytest.raises(TokenListError, match=rf"{p}: must start with '<blank>'"):
        TokenList.load(p)
    p.write_text("<blank>\n<unk>\n<sos/eos>\na\n")
    with pytest.raises(TokenListError, match=rf"{p}:3: '<sos/eos>' must be the last token"):
        TokenList.load(p)
    p.write_bytes(b"<blank>\n<unk>\n\xff\n")
    with pytest.raises(TokenListError, match=rf"{p}:3: not valid UTF-8"):
        TokenList.load(p)
