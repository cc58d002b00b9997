"""ESPnet Conformer CTC support, checked against espnet's own modules (ConformerEncoder, CTC, Stft, LogMel,
GlobalMVN, UtteranceMVN, TransformerDecoder) built directly and saved in ESPnet's experiment layout."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip(
    "espnet2.asr.encoder.conformer_encoder",
    reason="espnet not installed (pip install --no-deps espnet==202511 && "
    "pip install -c constraints.txt typeguard packaging)",
)

from espnet2.asr.ctc import CTC  # noqa: E402
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder  # noqa: E402
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder  # noqa: E402
from espnet2.layers.global_mvn import GlobalMVN as EspGlobalMVN  # noqa: E402
from espnet2.layers.utterance_mvn import UtteranceMVN as EspUtteranceMVN  # noqa: E402

from cald_asr.frontend.espnet_fbank import EspnetFbank, GlobalMVN, UtteranceMVN  # noqa: E402
from cald_asr.mixers import Linformer, build_mixer  # noqa: E402
from cald_asr.models.encoders.espnet_conformer import (  # noqa: E402
    EspnetConformerEncoder,
    attention_weights,
    conformer_ctc_from_scratch,
    load_espnet_asr,
    save_espnet_asr,
)

IN_DIM, VOCAB = 20, 12
TOKENS = ["<blank>", "<unk>"] + [chr(ord("a") + i) for i in range(VOCAB - 3)] + ["<sos/eos>"]
REL = dict(rel_pos_type="latest", pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn")
ABS = dict(pos_enc_layer_type="abs_pos", selfattention_layer_type="selfattn")


AN4_TEACHER = Path(__file__).resolve().parents[2] / "egs" / "an4" / "asr1" / "conf" / "teacher_conformer.yaml"


def an4_conformer_conf(**kw):
    """The AN4 recipe's Conformer (its conf/teacher_conformer.yaml), as conformer_ctc_from_scratch's encoder_conf."""
    return {**yaml.safe_load(AN4_TEACHER.read_text())["encoder_conf"]["encoder_conf"], **kw}


def enc_conf(**kw):
    return dict(
        output_size=32,
        attention_heads=4,
        linear_units=64,
        num_blocks=3,
        cnn_module_kernel=7,
        input_layer="conv2d",
        macaron_style=True,
        **{**REL, **kw},
    )


def randomise_batchnorm(module):
    """Fresh BatchNorm running stats are (0, 1): give them values so that loading them is tested."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def write_experiment(tmp_path, encoder_conf, extra_conf=None, extra_state=None):
    """An ESPnet ASR experiment built with espnet's classes: (encoder, ctc, config.yaml, model.pth)."""
    torch.manual_seed(0)
    enc = ConformerEncoder(input_size=IN_DIM, **encoder_conf)
    randomise_batchnorm(enc)
    ctc = CTC(odim=VOCAB, encoder_output_size=enc.output_size())
    dec = TransformerDecoder(
        vocab_size=VOCAB, encoder_output_size=enc.output_size(), attention_heads=4, linear_units=64, num_blocks=1
    )
    conf = {
        "input_size": IN_DIM,
        "frontend": None,
        "normalize": None,
        "specaug": "specaug",
        "specaug_conf": {"apply_time_warp": True},
        "encoder": "conformer",
        "encoder_conf": encoder_conf,
        "decoder": "transformer",
        "decoder_conf": {"num_blocks": 1},
        "model": "espnet",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
        "ctc_conf": {
            "dropout_rate": 0.0,
            "ctc_type": "builtin",
            "reduce": True,
            "ignore_nan_grad": None,
            "zero_infinity": True,
        },
        "token_list": TOKENS,
        **(extra_conf or {}),
    }
    state = {
        **{f"encoder.{k}": v for k, v in enc.state_dict().items()},
        **{f"ctc.{k}": v for k, v in ctc.state_dict().items()},
        **{f"decoder.{k}": v for k, v in dec.state_dict().items()},
        **(extra_state or {}),
    }
    exp = tmp_path / "exp" / "asr_test"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    torch.save(state, exp / "valid.acc.ave.pth")
    return enc.eval(), ctc.eval(), exp / "config.yaml", exp / "valid.acc.ave.pth"


def espnet_stft_logmel():
    """ESPnet's Stft imports torch_complex (pip install -c constraints.txt torch_complex)."""
    pytest.importorskip("torch_complex", reason="espnet2.layers.stft needs torch_complex")
    from espnet2.layers.log_mel import LogMel
    from espnet2.layers.stft import Stft

    return LogMel, Stft


def feats_batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, IN_DIM, generator=g)
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("pos", [REL, ABS], ids=["rel_pos", "abs_pos"])
def test_loader_matches_espnet_model(tmp_path, pos):
    enc, ctc, cfg, pth = write_experiment(tmp_path, enc_conf(**pos))
    x, lens = feats_batch([57, 41])
    with torch.no_grad():
        ref, ref_lens, _ = enc(x, lens)
        ref_logits = ctc.ctc_lo(ref)
        # padding_invariant=False: ESPnet's numerics on the padded batch, frame for frame
        eo, logits = load_espnet_asr(cfg, pth, padding_invariant=False)(x, lens)
    assert torch.equal(eo.out_lengths, ref_lens)
    valid = torch.arange(ref.size(1))[None, :] < ref_lens[:, None]
    torch.testing.assert_close(eo.out[valid], ref[valid], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits[valid], ref_logits[valid], rtol=0, atol=1e-6)
    assert eo.out[~valid].abs().max() == 0


def test_hidden_states_match_espnet_layers(tmp_path):
    enc, _, cfg, pth = write_experiment(tmp_path, enc_conf())
    x, lens = feats_batch([63])
    model = load_espnet_asr(cfg, pth)
    with torch.no_grad():
        (ref_out, ref_hs), _, _ = enc(x, lens, return_all_hs=True)
        eo = model.encoder(x, lens)
    assert len(eo.hidden_states) == enc_conf()["num_blocks"] == len(ref_hs)
    for mine, theirs in zip(eo.hidden_states[:-1], ref_hs[:-1]):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
    # ESPnet's last per-layer output is before after_norm; ours is after it, i.e. the encoder output
    torch.testing.assert_close(eo.hidden_states[-1], enc.after_norm(ref_hs[-1]), rtol=0, atol=1e-6)
    assert eo.hidden_states[-1] is eo.out
    torch.testing.assert_close(eo.out, ref_out, rtol=0, atol=1e-6)


def test_padding_invariance_and_espnet_batch_behaviour(tmp_path):
    enc, _, cfg, pth = write_experiment(tmp_path, enc_conf())
    model = load_espnet_asr(cfg, pth)
    x, lens = feats_batch([57, 38])
    with torch.no_grad():
        batch = model.encoder(x, lens)
        alone = [model.encoder(x[i : i + 1, :n], lens[i : i + 1]) for i, n in enumerate(lens.tolist())]
        esp_batch, esp_lens, _ = enc(x, lens)
        esp_short, esp_short_len, _ = enc(x[1:, :38], lens[1:])
    for i, a in enumerate(alone):
        n = int(a.out_lengths)
        assert int(batch.out_lengths[i]) == n
        for hb, ha in zip(batch.hidden_states, a.hidden_states):
            torch.testing.assert_close(hb[i, :n], ha[0], rtol=0, atol=1e-5)
            assert hb[i, n:].abs().sum() == 0
    # What ESPnet itself does: the batch mask keeps (38+1)//2 = 19 then 10 frames of the short utterance
    # where alone it has ((38-1)//2 - 1)//2 = 8, and its unmasked conv module leaks padding into them.
    assert int(esp_short_len) == 8 and int(esp_lens[1]) == 10
    assert (esp_batch[1, :8] - esp_short[0]).abs().max() > 1e-3


@pytest.mark.parametrize("pos", [REL, ABS], ids=["rel_pos", "abs_pos"])
def test_replace_attention_with_bimamba2(tmp_path, pos):
    _, _, cfg, pth = write_experiment(tmp_path, enc_conf(**pos))
    model = load_espnet_asr(cfg, pth)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def factory(i, attn, d):
        seen.append((i, type(attn).__name__, d))
        return build_mixer("bimamba2", d, headdim=16, d_state=16)

    removed = model.encoder.replace_token_mixers(factory)
    assert [s[0] for s in seen] == [0, 1, 2] and all(s[2] == 32 for s in seen)
    assert [r[0] for r in removed] == [f"conformer.encoders.{i}.self_attn" for i in range(3)]
    assert all(hasattr(old, "linear_q") for _, old, _ in removed)
    after = model.state_dict()
    kept = {k for k in before if ".self_attn." not in k}
    assert kept == {k for k in after if ".self_attn." not in k}
    for k in kept:
        assert torch.equal(before[k], after[k]), k
    assert all(".self_attn.mixer." in k for k in after if ".self_attn." in k)
    if pos is REL:
        assert not any("linear_pos" in k or "pos_bias" in k for k in after)
    x, lens = feats_batch([57, 38])
    with torch.no_grad():
        eo, logits = model(x, lens)
        alone = model(x[1:, :38], lens[1:])[0]
    assert eo.out.shape == (2, 13, 32) and logits.shape == (2, 13, VOCAB)
    assert torch.equal(eo.out_lengths, torch.tensor([13, 8]))
    torch.testing.assert_close(eo.out[1, :8], alone.out[0], rtol=0, atol=1e-5)
    model.train()
    model(x, lens)[1].logsumexp(-1).sum().backward()
    mixer = model.encoder.conformer.encoders[0].self_attn.mixer
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.parameters())
    with pytest.raises(ValueError, match="already replaced"):
        model.encoder.replace_token_mixers(factory)
    with pytest.raises(ValueError, match="token mixers"):
        save_espnet_asr(model, tmp_path / "out")


def test_attention_weights_initialise_an_equivalent_linformer(tmp_path):
    """With E = F = sqrt(n) I (n = k = max_len) Linformer is plain attention, so the transferred
    projections must reproduce ESPnet's MultiHeadedAttention exactly."""
    enc, _, _, _ = write_experiment(tmp_path, enc_conf(**ABS))
    attn = enc.encoders[1].self_attn
    w = attention_weights(attn)
    assert w["n_heads"] == 4 and torch.equal(w["k_w"], attn.linear_k.weight)
    n = 12
    lin = Linformer.from_attention_weights(
        **{k: v for k, v in w.items() if k != "n_heads"}, num_heads=w["n_heads"], max_len=n, k=n, sharing="key_value"
    )
    with torch.no_grad():
        lin.E.weight.copy_(torch.eye(n) * math.sqrt(n))
        x = torch.randn(2, n, 32, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(lin.eval()(x), attn(x, x, x, None), rtol=0, atol=1e-5)


def test_frontend_and_global_mvn_model_matches_espnet_chain(tmp_path, fsdd_16k):
    LogMel, Stft = espnet_stft_logmel()

    stats = tmp_path / "feats_stats.npz"
    g = np.random.default_rng(0)
    s = g.normal(size=40) * 100
    np.savez(stats, count=np.array(1000), sum=s, sum_square=s**2 / 1000 + g.uniform(50, 100, 40) * 1000)
    fconf = {"fs": "16k", "n_fft": 512, "hop_length": 160, "n_mels": 40}
    stft, logmel = Stft(n_fft=512, hop_length=160), LogMel(fs=16000, n_fft=512, n_mels=40)
    norm = EspGlobalMVN(stats)
    torch.manual_seed(0)
    enc = ConformerEncoder(input_size=40, **enc_conf()).eval()
    randomise_batchnorm(enc)
    ctc = CTC(odim=VOCAB, encoder_output_size=32)
    conf = {
        "input_size": None,
        "frontend": "default",
        "frontend_conf": fconf,
        "normalize": "global_mvn",
        "normalize_conf": {"stats_file": "exp/asr_stats/train/feats_stats.npz"},
        "encoder": "conformer",
        "encoder_conf": enc_conf(),
        "model_conf": {"ctc_weight": 1.0},
        "token_list": TOKENS,
    }
    state = {
        "frontend.logmel.melmat": logmel.melmat,
        "normalize.mean": norm.mean,
        "normalize.std": norm.std,
        **{f"encoder.{k}": v for k, v in enc.state_dict().items()},
        **{f"ctc.{k}": v for k, v in ctc.state_dict().items()},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.save(state, tmp_path / "model.pth")
    model = load_espnet_asr(tmp_path / "config.yaml", tmp_path / "model.pth")

    wav = torch.from_numpy(fsdd_16k("3_jackson_0.wav"))[None]
    n = torch.tensor([wav.size(1)])
    with torch.no_grad():
        spec, flen = stft(wav, n)
        feats, _ = logmel(spec[..., 0] ** 2 + spec[..., 1] ** 2, flen)
        feats, _ = norm(feats, flen)
        ref, ref_len, _ = enc(feats, flen)
        eo, logits = model(wav, n)
    assert torch.equal(eo.out_lengths, ref_len)
    torch.testing.assert_close(logits, ctc.ctc_lo(ref), rtol=0, atol=1e-4)


def test_fbank_matches_espnet_stft_logmel_and_is_batch_independent(fsdd_16k):
    LogMel, Stft = espnet_stft_logmel()

    wavs = [torch.from_numpy(fsdd_16k(f)) for f in ("0_jackson_0.wav", "7_theo_3.wav")]
    for conf in (
        {"n_fft": 512, "hop_length": 160, "n_mels": 80},
        {
            "n_fft": 400,
            "win_length": 320,
            "hop_length": 128,
            "n_mels": 40,
            "window": "hamming",
            "fmin": 60,
            "fmax": 7600,
            "htk": True,
        },
    ):
        ours = EspnetFbank(**conf)
        mel_keys = ("n_fft", "n_mels", "fmin", "fmax", "htk")
        stft = Stft(**{k: v for k, v in conf.items() if k not in mel_keys[1:]})
        logmel = LogMel(fs=16000, **{k: v for k, v in conf.items() if k in mel_keys})
        lens = torch.tensor([len(w) for w in wavs])
        batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
        fb, fb_len = ours(batch, lens)
        for i, w in enumerate(wavs):
            spec, n = stft(w[None], lens[i : i + 1])
            ref, _ = logmel(spec[..., 0] ** 2 + spec[..., 1] ** 2, n)
            assert int(fb_len[i]) == int(n) == len(w) // conf["hop_length"] + 1
            torch.testing.assert_close(fb[i, : int(n)], ref[0], rtol=1e-5, atol=1e-4)
            assert fb[i, int(n) :].abs().sum() == 0


def test_mvn_layers_match_espnet(tmp_path):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 30, 6, generator=g) * 3 + 2
    n = torch.tensor([30])
    stats = tmp_path / "stats.npz"
    np.savez(
        stats,
        count=np.array(30),
        sum=x[0].sum(0).double().numpy() + 7,
        sum_square=(x[0] ** 2).sum(0).double().numpy() + 40,
    )
    for nm, nv in ((True, True), (True, False), (False, True)):
        got = GlobalMVN.from_stats_file(stats, nm, nv)(x.clone(), n)[0]
        torch.testing.assert_close(got, EspGlobalMVN(stats, nm, nv)(x.clone(), n)[0])
        got = UtteranceMVN(nm, nv)(x.clone(), n)[0]
        torch.testing.assert_close(got, EspUtteranceMVN(nm, nv)(x.clone(), n)[0])
    # batched: each utterance normalised over its own frames only, padding zero
    xb = torch.cat([x, x], 0)
    xb[1, 20:] = 0.0
    out, _ = UtteranceMVN(True, True)(xb, torch.tensor([30, 20]))
    torch.testing.assert_close(out[1, :20], UtteranceMVN(True, True)(x[:, :20].clone(), torch.tensor([20]))[0][0])
    assert out[1, 20:].abs().max() == 0


def test_from_scratch_builder_round_trips(tmp_path):
    torch.manual_seed(0)
    tokens = ["<blank>", "<unk>", "a", "b", "c", "<space>", "<sos/eos>"]
    model = conformer_ctc_from_scratch(input_size=13, token_list=tokens, **an4_conformer_conf(num_blocks=2)).eval()
    conf = model.config["encoder_conf"]
    assert (
        conf["output_size"],
        conf["attention_heads"],
        conf["linear_units"],
        conf["cnn_module_kernel"],
        conf["input_layer"],
        conf["macaron_style"],
    ) == (144, 4, 576, 15, "conv2d", True)
    randomise_batchnorm(model)
    cfg, pth = save_espnet_asr(model, tmp_path / "exp" / "an4_conformer")
    assert yaml.safe_load(cfg.read_text())["encoder"] == "conformer"
    assert all(k.startswith(("encoder.", "ctc.")) for k in torch.load(pth, weights_only=True))
    back = load_espnet_asr(cfg, pth)
    assert back.token_list == tokens and back.config == model.config
    x, lens = torch.randn(2, 120, 13), torch.tensor([120, 90])
    with torch.no_grad():
        a, la = model(x, lens)
        b, lb = back(x, lens)
    assert torch.equal(a.out_lengths, b.out_lengths) and torch.equal(la, lb)


def test_from_scratch_global_mvn_reads_stats_and_round_trips(tmp_path):
    g = np.random.default_rng(2)
    feats = g.normal(size=(500, 13)) * g.uniform(0.5, 20, 13) + g.normal(size=13) * 10
    stats = tmp_path / "feats_stats.npz"
    np.savez(stats, count=np.array(len(feats)), sum=feats.sum(0), sum_square=(feats**2).sum(0))
    model = conformer_ctc_from_scratch(
        vocab_size=8,
        normalize="global_mvn",
        normalize_conf={"stats_file": str(stats)},
        **an4_conformer_conf(num_blocks=1),
    ).eval()
    np.testing.assert_allclose(model.normalize.mean.numpy(), feats.mean(0), rtol=1e-9)
    np.testing.assert_allclose(model.normalize.std.numpy(), feats.std(0), rtol=1e-9)
    cfg, pth = save_espnet_asr(model, tmp_path / "exp")
    stats.unlink()  # ESPnet keeps mean/std in model.pth: loading must not need the stats file
    back = load_espnet_asr(cfg, pth)
    x = torch.from_numpy(feats[None, :200]).float()
    with torch.no_grad():
        torch.testing.assert_close(back(x)[1], model(x)[1], rtol=0, atol=0)


def test_clear_errors_name_the_file(tmp_path):
    _, _, cfg, pth = write_experiment(tmp_path, enc_conf())
    bad = tmp_path / "transformer.yaml"
    bad.write_text(cfg.read_text().replace("encoder: conformer", "encoder: transformer"))
    with pytest.raises(ValueError, match=f"{bad}.*'transformer' is not supported"):
        load_espnet_asr(bad, pth)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.pth")):
        load_espnet_asr(cfg, tmp_path / "nope.pth")
    cut = tmp_path / "truncated.pth"
    cut.write_bytes(pth.read_bytes()[: pth.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{cut}: cannot read"):
        load_espnet_asr(cfg, cut)
    sd = torch.load(pth, weights_only=True)
    del sd["encoder.encoders.1.conv_module.depthwise_conv.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(sd, partial)
    with pytest.raises(ValueError, match=f"{partial} does not match .*missing encoder.encoders.1.conv_module"):
        load_espnet_asr(cfg, partial)
    broken = tmp_path / "broken.yaml"
    broken.write_text("encoder: conformer\nencoder_conf: [1, 2\n")
    with pytest.raises(ValueError, match=f"{broken}:\\d+: invalid YAML"):
        load_espnet_asr(broken, pth)
    with pytest.raises(ValueError, match="too short"):
        EspnetConformerEncoder(ConformerEncoder(input_size=IN_DIM, **enc_conf())).eval()(*feats_batch([30, 6]))
