"""Scoring warns about reference symbols outside the model's token list (the model can never output them):
score --config and make_results, for char and bpe token lists. The scores themselves are unchanged."""

import json
from pathlib import Path

import pytest
import torch

from cald_asr.bin import make_results
from cald_asr.bin.score import main as score_main
from cald_asr.data.kaldi_dir import write_kv
from cald_asr.models.model_file import build_model, save_model
from cald_asr.text import SentencePieceTokenizer, TokenList, train_sentencepiece

from shared_data import SHARED_DATA

YESNO = SHARED_DATA / "yesno" / "waves_yesno"
CHARS = ["<blank>", "<unk>", "<space>", "N", "O", "E", "S", "Y", "<sos/eos>"]


def yesno_refs(n=6):
    names = sorted(p.stem for p in YESNO.glob("*.wav"))[:n]
    return {f"yesno-{m}": " ".join("YES" if c == "1" else "NO" for c in m.split("_")) for m in names}


def tiny_model(out: Path, token_list, **fields) -> Path:
    """A seeded 1-layer CTC model in our model format (untrained: scoring reads only its config)."""
    config = {
        "model": "asr_ctc",
        "frontend": "whisper_logmel",
        "frontend_conf": {"n_mels": 80},
        "encoder": "whisper",
        "encoder_conf": dict(n_mels=80, d_model=32, n_heads=2, n_layers=1, ffn_dim=64),
        "token_list": token_list,
        **fields,
    }
    torch.manual_seed(0)
    return save_model(build_model(config), config, out)


def n_chars(texts):
    return sum(len(" ".join(t.split())) for t in texts)


def test_make_results_warns_about_reference_symbols_the_model_lacks(tmp_path, capsys):
    refs = yesno_refs()
    first, second = sorted(refs)[:2]
    refs[first] += " QUIZ"
    refs[second] = "NO Q " + refs[second]
    data = tmp_path / "dump"
    write_kv(data / "test" / "text", refs)
    model = tiny_model(tmp_path / "exp" / "asr_tiny" / "best", CHARS, token_type="char")
    write_kv(model / "decode" / "test" / "1best_recog" / "text", yesno_refs())
    out = tmp_path / "RESULTS.md"
    assert (
        make_results.main(
            [
                "--models",
                str(model),
                "--test_sets",
                "test",
                "--decode_tag",
                "decode",
                "--data_dir",
                str(data),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    n = n_chars(refs.values())
    assert capsys.readouterr().err.splitlines() == [
        f"make_results: warning: asr_tiny/best: {data / 'test' / 'text'}: 5 of {n} tokens ({500 / n:.2f} %) are not "
        "in the token list and become <unk>: 'Q' x2, 'I' x1, 'U' x1, 'Z' x1"
    ]
    res = json.loads((model / "decode" / "test" / "score_wer" / "result.json").read_text())
    assert res["ref_unknown"] == {"n_tokens": n, "n_unknown": 5, "symbols": {"Q": 2, "I": 1, "U": 1, "Z": 1}}
    assert res["n_ins"] == 0 and res["n_del"] == 3  # the scores count words as before: QUIZ, NO, Q deleted


def test_score_with_a_bpe_config(tmp_path, capsys):
    refs = yesno_refs()
    bpe = train_sentencepiece(refs.values(), tmp_path / "bpe", vocab_size=8)
    pieces = SentencePieceTokenizer(bpe).pieces()
    model = tiny_model(tmp_path / "model", TokenList.build(pieces).tokens, token_type="bpe", bpemodel=str(bpe))
    ref = dict(refs)
    ref[sorted(ref)[0]] += " QUIZ"
    write_kv(tmp_path / "ref", ref)
    write_kv(tmp_path / "hyp", refs)
    args = ["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--output_dir", str(tmp_path / "sc")]
    assert score_main(args + ["--config", str(model)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"score: warning: {tmp_path / 'ref'}: ")
    assert err[0].endswith("are not in the token list and become <unk>: 'QUIZ' x1")  # the model's own <unk>
    assert score_main(args) == 0 and capsys.readouterr().err == ""  # without --config: not checked

    (tmp_path / "bpe.model").rename(tmp_path / "elsewhere.model")
    assert score_main(args + ["--config", str(model / "config.yaml")]) == 2
    assert capsys.readouterr().err == f"score: error: {model / 'config.yaml'}: bpemodel '{bpe}' not found\n"
    assert score_main(args + ["--config", str(model), "--bpemodel", str(tmp_path / "elsewhere.model")]) == 0
    assert "'QUIZ' x1" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _needs_yesno():
    if not YESNO.is_dir():
        pytest.skip(f"shared corpus {YESNO} not present")
