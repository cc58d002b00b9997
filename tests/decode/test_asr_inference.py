"""asr_inference CLI: ESPnet's output layout, agreement with the Python API, broken input, key files,
feature input, option errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from cald_asr.bin.asr_inference import main
from cald_asr.data.audio import write_wav
from cald_asr.data.features import write_feats
from cald_asr.data.kaldi_dir import c_sort_key, read_kv, write_kv
from cald_asr.decode.ctc_greedy import ctc_greedy
from cald_asr.inference import Speech2Text

from decode_util import YESNO_TOKENS, save_seeded, tiny_config

RECOG_FILES = ("text", "token", "token_int", "score")


def run_cli(model_dir, scp, out_dir, *extra, kind="sound"):
    return main(
        [
            "--asr_train_config",
            str(model_dir),
            "--data_path_and_name_and_type",
            f"{scp},speech,{kind}",
            "--output_dir",
            str(out_dir),
            *map(str, extra),
        ]
    )


def read_recog(d: Path):
    return {name: read_kv(d / name, allow_empty_value=True) for name in RECOG_FILES}


def test_layout_nbest_and_rtf(teacher_dir, yesno16k, tmp_path):
    data, wavs, audio = yesno16k
    conf = tmp_path / "decode.yaml"
    conf.write_text(yaml.safe_dump({"beam_size": 3, "nbest": 2, "batch_size": 4}))
    out = tmp_path / "dec"
    assert run_cli(teacher_dir, data / "wav.scp", out, "--config", conf) == 0
    one, two = read_recog(out / "1best_recog"), read_recog(out / "2best_recog")
    for name in RECOG_FILES:
        keys = [line.split(" ", 1)[0] for line in (out / "1best_recog" / name).read_text().splitlines()]
        assert keys == sorted(wavs, key=c_sort_key)
    assert set(two["text"]) <= set(wavs) and len(two["text"]) >= 1
    for k in wavs:
        ids = [int(i) for i in one["token_int"][k].split()]
        assert one["token"][k].split() == [YESNO_TOKENS[i] for i in ids]
        # the tokenizer's rule: <sos/eos> is not text (an untrained model may emit it)
        want = "".join({"<space>": " ", "<sos/eos>": ""}.get(YESNO_TOKENS[i], YESNO_TOKENS[i]) for i in ids)
        assert one["text"][k] == want
        if k in two["score"]:
            assert float(two["score"][k]) <= float(one["score"][k])
            assert two["token_int"][k] != one["token_int"][k]
    assert any(one["text"][k] for k in wavs)
    rtf = read_kv(out / "rtf")
    assert int(rtf["utterances"]) == len(wavs) and int(rtf["failed"]) == 0
    assert float(rtf["audio_seconds"]) == pytest.approx(sum(len(x) for x in audio.values()) / 16000, abs=1e-3)
    assert float(rtf["rtf"]) == pytest.approx(float(rtf["decode_seconds"]) / float(rtf["audio_seconds"]), rel=1e-2)
    assert (out / "failed").read_text() == ""


def test_api_and_cli_agree(teacher_dir, yesno16k, tmp_path):
    data, wavs, _ = yesno16k
    out = tmp_path / "dec"
    assert run_cli(teacher_dir, data / "wav.scp", out, "--batch_size", 3) == 0
    cli = read_recog(out / "1best_recog")
    s2t = Speech2Text(teacher_dir)
    for k, path in wavs.items():
        (hyp,) = s2t(path)
        assert cli["text"][k] == hyp.text
        assert cli["token_int"][k] == " ".join(map(str, hyp.token_ids))
        assert float(cli["score"][k]) == pytest.approx(hyp.score, abs=1e-5)


def test_beam_one_is_greedy_on_the_model(teacher_dir, yesno16k):
    _, _, audio = yesno16k
    s2t = Speech2Text(teacher_dir, beam_size=1)
    xs = list(audio.values())[:3]
    for x, nbest in zip(xs, s2t.decode_batch(xs)):
        with torch.no_grad():
            out = s2t.model(torch.from_numpy(x)[None])
        assert nbest[0].token_ids == ctc_greedy(out.logits, out.out_lengths)[0]
        assert len(nbest) == 1


def test_broken_inputs_are_reported_and_the_rest_decoded(teacher_dir, yesno16k, tmp_path):
    data, wavs, audio = yesno16k
    good = dict(list(wavs.items())[:2])
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    sf.write(str(bad_dir / "empty.wav"), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    x8k = list(audio.values())[0][::2].copy()
    write_wav(bad_dir / "rate8k.wav", x8k, 8000)
    write_wav(bad_dir / "short.wav", np.full(150, 0.1, dtype=np.float32), 16000)
    x_nan = list(audio.values())[0].astype(np.float32).copy()
    x_nan[100:103] = np.nan
    sf.write(str(bad_dir / "nan.wav"), x_nan, 16000, subtype="FLOAT")
    scp = {
        **good,
        "b-missing": str(bad_dir / "nothere.wav"),
        "b-corrupt": str(bad_dir / "corrupt.wav"),
        "b-empty": str(bad_dir / "empty.wav"),
        "b-rate": str(bad_dir / "rate8k.wav"),
        "b-short": str(bad_dir / "short.wav"),
        "b-nan": str(bad_dir / "nan.wav"),
    }
    write_kv(tmp_path / "wav.scp", scp)
    out = tmp_path / "dec"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cald_asr.bin.asr_inference",
            "--asr_train_config",
            str(teacher_dir),
            "--data_path_and_name_and_type",
            f"{tmp_path / 'wav.scp'},speech,sound",
            "--output_dir",
            str(out),
            "--batch_size",
            "4",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1, r.stderr
    failed = read_kv(out / "failed")
    assert set(failed) == {"b-missing", "b-corrupt", "b-empty", "b-rate", "b-short", "b-nan"}
    assert "does not exist" in failed["b-missing"]
    assert "not a readable audio file" in failed["b-corrupt"]
    assert "empty audio" in failed["b-empty"]
    assert "8000 Hz" in failed["b-rate"] and "--resample true" in failed["b-rate"]
    assert "too short" in failed["b-short"]
    assert f"3 of {len(x_nan)} samples are NaN or infinite (non-finite audio)" in failed["b-nan"]
    for utt in failed:
        assert f"'{utt}' failed" in r.stderr
    assert "decoded 2 of 8 utterance(s), 6 failed" in r.stderr
    assert set(read_kv(out / "1best_recog" / "token_int", allow_empty_value=True)) == set(good)
    assert read_kv(out / "rtf")["failed"] == "6"

    # --resample true: the 8 kHz file is converted and decoded like the API decodes it at 8 kHz
    out2 = tmp_path / "dec2"
    assert run_cli(teacher_dir, tmp_path / "wav.scp", out2, "--resample", "true") == 1
    assert "b-rate" not in read_kv(out2 / "failed")
    (hyp,) = Speech2Text(teacher_dir)(x8k, fs=8000)
    assert read_kv(out2 / "1best_recog" / "token_int", allow_empty_value=True)["b-rate"] == " ".join(
        map(str, hyp.token_ids)
    )


def test_key_file_selects_utterances(teacher_dir, yesno16k, tmp_path):
    data, wavs, _ = yesno16k
    keys = sorted(wavs)[1:3]
    (tmp_path / "keys").write_text("".join(f"{k} {wavs[k]}\n" for k in keys) + "not-in-scp x\n")
    out = tmp_path / "dec"
    assert run_cli(teacher_dir, data / "wav.scp", out, "--key_file", tmp_path / "keys") == 1
    assert set(read_kv(out / "1best_recog" / "text", allow_empty_value=True)) == set(keys)
    assert "no entry in" in read_kv(out / "failed")["not-in-scp"]


def test_feature_model_reads_feats_scp(tmp_path):
    """A model without a front end reads (frames, dim) features from feats.scp (AN4's case)."""
    config = {**tiny_config(n_mels=13), "frontend": None, "frontend_conf": {}}
    model_dir = save_seeded(config, tmp_path / "m", seed=2, head_gain=8.0)
    rng = np.random.default_rng(0)
    mats = {f"s-{i}": rng.standard_normal((120 + 40 * i, 13)).astype(np.float32) for i in range(3)}
    mats["s-wrongdim"] = rng.standard_normal((100, 20)).astype(np.float32)
    write_feats(tmp_path / "feats.ark", tmp_path / "feats.scp", sorted(mats.items()))
    out = tmp_path / "dec"
    assert run_cli(model_dir, tmp_path / "feats.scp", out, "--batch_size", 2, kind="kaldi_ark") == 1
    assert "dimension 20" in read_kv(out / "failed")["s-wrongdim"]
    cli = read_kv(out / "1best_recog" / "token_int", allow_empty_value=True)
    s2t = Speech2Text(model_dir)
    assert s2t.input_kind == "feats"
    for k in ("s-0", "s-1", "s-2"):
        assert cli[k] == " ".join(map(str, s2t(mats[k])[0].token_ids))
    assert float(read_kv(out / "rtf")["audio_seconds"]) == pytest.approx((120 + 160 + 200) / 100)


def test_option_errors_exit_2(teacher_dir, yesno16k, tmp_path, capsys):
    data, _, _ = yesno16k
    assert run_cli(teacher_dir, data / "wav.scp", tmp_path / "o", kind="kaldi_ark") == 2
    assert "reads audio" in capsys.readouterr().err
    assert run_cli(tmp_path / "no_model", data / "wav.scp", tmp_path / "o") == 2
    assert "not found" in capsys.readouterr().err
    assert run_cli(teacher_dir, data / "wav.scp", tmp_path / "o", "--nbest", 3, "--beam_size", 2) == 2
    assert "nbest" in capsys.readouterr().err
    assert run_cli(teacher_dir, data / "wav.scp", tmp_path / "o", "--ctc_weight", 0.3) == 2
    assert "CTC" in capsys.readouterr().err


def test_config_file_may_name_the_model_and_data(teacher_dir, yesno16k, tmp_path):
    data, wavs, _ = yesno16k
    conf = tmp_path / "decode.yaml"
    conf.write_text(
        yaml.safe_dump(
            {"asr_train_config": str(teacher_dir), "data_path_and_name_and_type": f"{data / 'wav.scp'},speech,sound"}
        )
    )
    assert main(["--config", str(conf), "--output_dir", str(tmp_path / "o")]) == 0
    assert set(read_kv(tmp_path / "o" / "1best_recog" / "text", allow_empty_value=True)) == set(wavs)
    with pytest.raises(SystemExit) as e:
        main(["--output_dir", str(tmp_path / "o")])
    assert e.value.code == 2


def test_hypotheses_unpack_as_espnets(teacher_dir, yesno16k):
    """`text, tokens, token_ids, hyp = nbest[0]` with hyp.score and hyp.yseq as in ESPnet; float(hyp) and
    arithmetic on it keep working for callers that used the score as a float; a journal round trip keeps it."""
    import json

    from cald_asr.bin.asr_inference import hyps_of, hyps_record

    _, wavs, _ = yesno16k
    nbest = Speech2Text(teacher_dir, beam_size=3, nbest=2)(next(iter(wavs.values())))
    text, tokens, token_ids, hyp = nbest[0]
    assert hyp.score == float(hyp) < 0 and hyp - 1.0 == hyp.score - 1.0
    assert hyp.yseq.dtype == torch.long and hyp.yseq.tolist() == token_ids
    assert nbest[0].score >= nbest[-1].score
    again = hyps_of({"hyps": json.loads(json.dumps(hyps_record(nbest)))})
    assert [h.score.yseq.tolist() for h in again] == [h.token_ids for h in nbest]
    assert [float(h.score) for h in again] == [float(h.score) for h in nbest]
