"""Conversion of real pretrained teachers: only the token mixers change, and the student trains."""

import copy

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from cald_asr.convert import convert_model
from cald_asr.frontend import WhisperLogMel
from cald_asr.mixers import BiMamba2, Linformer
from cald_asr.models.asr_ctc import ASRCTCModel
from cald_asr.models.encoders import BertEncoder, WhisperEncoder, default_minilm_path, default_whisper_tiny_en_path
from cald_asr.models.encoders.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder
from cald_asr.models.text_classifier import TextClassifier

SMALL_MAMBA = dict(d_state=16, headdim=32)


@pytest.fixture(scope="module")
def whisper_ctc():
    torch.manual_seed(0)
    return ASRCTCModel(WhisperEncoder.from_ct2(default_whisper_tiny_en_path()), 9, WhisperLogMel())


def assert_only_mixers_changed(before, after, n_layers):
    sd0, sd1 = before.state_dict(), after.state_dict()
    kept = [k for k in sd0 if ".self_attn." not in k]
    assert kept and all(k in sd1 for k in kept)
    for k in kept:
        assert torch.equal(sd0[k], sd1[k]), k
    assert not [k for k in sd1 if k not in sd0 and ".self_attn." not in k]
    assert len({k.split(".self_attn.")[0] for k in sd1 if ".self_attn." in k}) == n_layers


@pytest.mark.parametrize(
    "mixer,conf,cls",
    [
        ("bimamba2", SMALL_MAMBA, BiMamba2),
        ("linformer", dict(max_len=1500, k=32, sharing="layerwise"), Linformer),
    ],
)
def test_whisper_conversion_keeps_every_other_tensor(whisper_ctc, mixer, conf, cls, capsys):
    student = copy.deepcopy(whisper_ctc)
    report = convert_model(student, mixer, conf)
    assert [r[0] for r in report.replaced] == [f"encoder.layers.{i}.self_attn" for i in range(4)]
    assert all(isinstance(layer.self_attn, cls) for layer in student.encoder.layers)
    assert_only_mixers_changed(whisper_ctc, student, 4)
    print(report)
    text = capsys.readouterr().out
    assert "converted 4 token mixer(s)" in text and f"{report.params_before:,}" in text


def test_linformer_takes_qkvo_from_the_teacher(whisper_ctc):
    student = copy.deepcopy(whisper_ctc)
    convert_model(student, "linformer", dict(max_len=1500, k=32))
    for t, s in zip(whisper_ctc.encoder.layers, student.encoder.layers):
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert torch.equal(getattr(t.self_attn, name).weight, getattr(s.self_attn, name).weight)
            assert torch.equal(getattr(t.self_attn, name).bias, getattr(s.self_attn, name).bias)


def test_linformer_layerwise_sharing_shares_one_projection(whisper_ctc):
    student = copy.deepcopy(whisper_ctc)
    report = convert_model(student, "linformer", dict(max_len=1500, k=32, sharing="layerwise"))
    es = {id(layer.self_attn.E) for layer in student.encoder.layers}
    assert len(es) == 1
    # Q, K, V, O are transferred, so the only new parameters are the one shared E (max_len x k)
    assert report.params_after - report.params_before == 1500 * 32


def test_bert_conversion_to_linformer_defaults_max_len_to_the_encoders():
    enc = BertEncoder.from_pretrained(default_minilm_path())
    model = TextClassifier(enc, 2)
    student = copy.deepcopy(model)
    convert_model(student, "linformer", dict(k=64))
    assert student.encoder.layers[0].self_attn.max_len == enc.max_length == 512
    assert_only_mixers_changed(model, student, 6)


def test_wav2vec2_conversion():
    cfg = Wav2Vec2Config(
        conv_dim=(32, 32),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    model = ASRCTCModel(Wav2Vec2Encoder(cfg), 9)
    student = copy.deepcopy(model)
    convert_model(student, "bimamba2", SMALL_MAMBA)
    assert_only_mixers_changed(model, student, 2)
    out = student(torch.randn(2, 4000), torch.tensor([4000, 3000]))
    assert out.logits.shape[:2] == (2, int(out.out_lengths.max()))


def test_unknown_mixer_is_refused_by_name(whisper_ctc):
    with pytest.raises(ValueError, match="unknown mixer 'bimamba3'.*bimamba2"):
        convert_model(copy.deepcopy(whisper_ctc), "bimamba3")


def test_linformer_without_max_len_on_speech_is_refused(whisper_ctc):
    with pytest.raises(ValueError, match="mixer_conf.max_len"):
        convert_model(copy.deepcopy(whisper_ctc), "linformer", dict(k=32))


def _yesno_batch(yesno_dir, n=4):
    files = sorted((yesno_dir / "waves_yesno").glob("*.wav"))[:n]
    wavs, texts = [], []
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        wavs.append(torch.from_numpy(soxr.resample(x, sr, 16000).astype(np.float32)))
        texts.append(" ".join("YES" if c == "1" else "NO" for c in f.stem.split("_")))
    chars = ["<blank>", "<unk>", "<space>", "E", "N", "O", "S", "Y"]
    ids = [[chars.index("<space>" if c == " " else c) for c in t] for t in texts]
    lengths = torch.tensor([len(w) for w in wavs])
    speech = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    text = torch.nn.utils.rnn.pad_sequence([torch.tensor(i) for i in ids], batch_first=True, padding_value=-1)
    return speech, lengths, text, torch.tensor([len(i) for i in ids]), len(chars)


def test_converted_ctc_loss_decreases_on_yesno(yesno_dir):
    # the yesno recipe's tiny Whisper-shaped config (random init): real audio, fast enough for every run
    torch.manual_seed(0)
    speech, lengths, text, text_lengths, vocab = _yesno_batch(yesno_dir)
    enc = WhisperEncoder(n_mels=80, d_model=64, n_heads=4, n_layers=2, ffn_dim=256)
    model = ASRCTCModel(enc, vocab, WhisperLogMel())
    convert_model(model, "bimamba2", dict(d_state=16, headdim=16))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = ASRCTCModel.ctc_loss(model(speech, lengths), text, text_lengths).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
