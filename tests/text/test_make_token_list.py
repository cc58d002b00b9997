import os

from cald_asr.bin.make_token_list import main
from cald_asr.data.kaldi_dir import write_kv
from cald_asr.text import SentencePieceTokenizer, TokenList

from an4_transcripts import an4_transcripts


def write_text(tmp_path):
    path = tmp_path / "data" / "train" / "text"
    write_kv(path, an4_transcripts("train"))
    return path


def test_char_token_list_from_an4(tmp_path, capsys):
    text = write_text(tmp_path)
    out = tmp_path / "token_list" / "char"
    assert main(["--token_type", "char", "--text", str(text), "--output_dir", str(out)]) == 0
    tl = TokenList.load(out / "tokens.txt")
    chars = {c for t in an4_transcripts("train").values() for c in t.replace(" ", "")}
    assert tl.tokens[:2] == ["<blank>", "<unk>"] and tl.tokens[-1] == "<sos/eos>"
    assert set(tl.tokens[2:-1]) == chars | {"<space>"}
    assert tl.tokens[2] == "<space>"  # the most frequent symbol in AN4 comes first
    assert "wrote" in capsys.readouterr().out


def test_reuse_force_and_stale(tmp_path, capsys):
    text = write_text(tmp_path)
    out = tmp_path / "tl"
    args = ["--token_type", "char", "--text", str(text), "--output_dir", str(out)]
    assert main(args) == 0
    first = (out / "tokens.txt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out and (out / "tokens.txt").stat().st_mtime_ns == first
    assert main(args + ["--force"]) == 0
    assert "wrote" in capsys.readouterr().out
    future = (out / "tokens.txt").stat().st_mtime + 10
    os.utime(text, (future, future))
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out


def test_bpe_token_list_and_model(tmp_path):
    text = write_text(tmp_path)
    out = tmp_path / "token_list" / "bpe"
    assert (
        main(
            [
                "--token_type",
                "bpe",
                "--nbpe",
                "30",
                "--bpe_model_type",
                "unigram",
                "--text",
                str(text),
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    tl = TokenList.load(out / "tokens.txt")
    model = SentencePieceTokenizer(out / "bpe.model", tl)
    assert tl.tokens[2:-1] == model.pieces() and len(tl) == 30 + 2
    for t in an4_transcripts("test").values():
        assert model.decode(model.encode(t)) == t
    # Another nbpe must not reuse the old list.
    assert main(["--token_type", "bpe", "--nbpe", "35", "--text", str(text), "--output_dir", str(out)]) == 0
    assert len(TokenList.load(out / "tokens.txt")) == 35 + 2


def test_bad_input(tmp_path, capsys):
    assert main(["--token_type", "char", "--text", str(tmp_path / "none"), "--output_dir", str(tmp_path)]) == 1
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "text"
    empty.write_text("utt1\n")
    assert main(["--token_type", "char", "--text", str(empty), "--output_dir", str(tmp_path / "o")]) == 1
    assert "no non-empty transcript" in capsys.readouterr().err
