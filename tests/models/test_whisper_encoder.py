"""WhisperEncoder loaded from the real tiny.en teacher, checked against CTranslate2's own encoder, and
loaded from a transformers checkpoint, checked against transformers' WhisperModel.encoder.

Tolerance against CTranslate2: 2e-4 absolute on outputs whose magnitude reaches ~12.  Both sides run
the same weights (the float16 checkpoint widened exactly to float32; ctranslate2 with
compute_type="float32"), so only float32 summation order differs: ~1e-5 relative to the output peak,
measured ~2e-5.  Against transformers: 1e-5 (same float32 weights, same op order; measured 0).
"""

import copy

import ctranslate2
import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperModel

from cald_asr.frontend import WhisperLogMel
from cald_asr.models.attention import MultiHeadSelfAttention
from cald_asr.models.encoders import WhisperEncoder, default_whisper_tiny_en_path
from cald_asr.models.encoders.whisper import sinusoids

CT2_TOL = 2e-4


@pytest.fixture(scope="module")
def teacher():
    return WhisperEncoder.from_ct2(default_whisper_tiny_en_path()).eval()


@pytest.fixture(scope="module")
def ct2_whisper():
    model_dir = default_whisper_tiny_en_path().parent
    return ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)


@pytest.fixture(scope="module")
def frontend():
    return WhisperLogMel(80)


def feats_of(frontend, wav: np.ndarray) -> torch.Tensor:
    feats, _ = frontend(torch.from_numpy(wav)[None])
    return feats  # (1, T, 80)


def ct2_encode(ct2_whisper, feats: torch.Tensor) -> np.ndarray:
    # CTranslate2 takes (batch, n_mels, frames); it accepts any frame count up to 2 x its 1500 positions.
    x = np.ascontiguousarray(feats.transpose(1, 2).numpy())
    return np.array(ct2_whisper.encode(ctranslate2.StorageView.from_array(x), to_cpu=True))


def test_teacher_dimensions(teacher):
    assert (teacher.n_mels, teacher.d_model, len(teacher.layers)) == (80, 384, 4)
    assert teacher.layers[0].self_attn.n_heads == 6
    assert isinstance(teacher.layers[0].self_attn, MultiHeadSelfAttention)
    d, f, m = 384, 1536, 80
    convs = (m * d * 3 + d) + (d * d * 3 + d)
    per_layer = (4 * d * d + 4 * d) + 2 * 2 * d + (2 * d * f + f + d)  # attention (k bias incl.), 2 LNs, FFN
    expected = convs + 4 * per_layer + 2 * d
    assert sum(p.numel() for p in teacher.parameters()) == expected
    # The package's "8.2M" counts the 1500 x 384 position table and no key bias.
    assert round((expected - 4 * d + teacher.positional_embedding.numel()) / 1e6, 1) == 8.2


def test_matches_ctranslate2_on_30s_input_as_whisper_feeds_it(teacher, ct2_whisper, frontend, fsdd_16k):
    wav = fsdd_16k("3_jackson_0.wav")
    padded = np.zeros(30 * 16000, np.float32)
    padded[: len(wav)] = wav
    feats = feats_of(frontend, padded)
    assert feats.shape == (1, 3000, 80)
    ref = ct2_encode(ct2_whisper, feats)
    with torch.no_grad():
        got = teacher(feats).out.numpy()
    assert got.shape == ref.shape == (1, 1500, 384)
    np.testing.assert_allclose(got, ref, atol=CT2_TOL, rtol=0)


def test_matches_ctranslate2_on_unpadded_clip(teacher, ct2_whisper, frontend, fsdd_16k):
    """The unpadded clip is a different input from the 30-s one (attention no longer sees the trailing
    silence), so its output is compared with CTranslate2 fed the same unpadded features."""
    feats = feats_of(frontend, fsdd_16k("9_yweweler_3.wav"))
    assert feats.shape[1] % 2 == 1  # odd frame count: conv2's last window reaches past the end
    ref = ct2_encode(ct2_whisper, feats)
    with torch.no_grad():
        got = teacher(feats, torch.tensor([feats.shape[1]])).out.numpy()
    assert got.shape == ref.shape == (1, (feats.shape[1] + 1) // 2, 384)
    np.testing.assert_allclose(got, ref, atol=CT2_TOL, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 5e-5)])
def test_batch_equals_each_clip_alone(teacher, frontend, fsdd_16k, dtype, tol):
    """In float64 the batch must equal each clip alone to round-off.  In float32 the tolerance is that of
    the model's own round-off: the float32 teacher differs from its float64 copy by up to 1.8e-5 on the
    last (normalised) layer, and batched vs single matmuls/attention differ by the same order."""
    model = copy.deepcopy(teacher).to(dtype)
    clips = [fsdd_16k(n) for n in ("0_george_5.wav", "9_yweweler_3.wav", "7_theo_12.wav")]
    wav = torch.zeros(3, max(len(c) for c in clips))
    for i, c in enumerate(clips):
        wav[i, : len(c)] = torch.from_numpy(c)
    feats, feat_lengths = frontend(wav, torch.tensor([len(c) for c in clips]))
    # Junk in padded feature frames must not leak into the valid frames.
    feats = feats + (torch.arange(feats.shape[1])[None, :, None] >= feat_lengths[:, None, None]) * 3.0
    with torch.no_grad():
        batch = model(feats.to(dtype), feat_lengths)
        assert len(batch.hidden_states) == 4 and batch.hidden_states[-1] is batch.out
        for i, c in enumerate(clips):
            alone = model(feats_of(frontend, c).to(dtype))
            n = int(batch.out_lengths[i])
            assert n == alone.out.shape[1] == (int(feat_lengths[i]) + 1) // 2
            for b, a in zip(batch.hidden_states, alone.hidden_states):
                torch.testing.assert_close(b[i, :n], a[0], atol=tol, rtol=0)
                assert torch.all(b[i, n:] == 0)


def test_position_formula_reproduces_stored_table_and_extends(teacher):
    stored = teacher.positional_embedding
    assert stored.shape == (1500, 384)
    # The table is stored in float16: rounding of values in [-1, 1] is at most 2**-12.
    assert (stored - sinusoids(0, 1500, 384)).abs().max().item() <= 2**-12
    ext = teacher.positions(2000)
    assert torch.equal(ext[:1500], stored)
    torch.testing.assert_close(ext[1500:], sinusoids(0, 2000, 384)[1500:], atol=0, rtol=0)


def test_position_limit_clamps_rows_from_the_limit_on():
    torch.manual_seed(0)
    free = WhisperEncoder(n_mels=8, d_model=16, n_heads=2, n_layers=1, ffn_dim=32, max_source_positions=50)
    limited = WhisperEncoder(**{**free.conf, "position_limit": 20})
    limited.load_state_dict(free.state_dict())
    assert limited.conf["position_limit"] == 20 and "position_limit" not in free.conf
    pos = limited.positions(70)  # past the stored table as well
    assert torch.equal(pos[:20], free.positions(20))
    assert torch.equal(pos[20:], free.positions(20)[19:20].expand(50, -1))
    # inputs within the limit are untouched; longer ones differ only from the limit's frame on
    feats = torch.randn(1, 60, 8)
    with torch.no_grad():
        torch.testing.assert_close(limited(feats[:, :40]).out, free(feats[:, :40]).out, atol=0, rtol=0)
        assert not torch.allclose(limited(feats).out[:, 20:], free(feats).out[:, 20:])
    limited.set_position_limit(None)
    assert "position_limit" not in limited.conf and torch.equal(limited.positions(70), free.positions(70))
    with pytest.raises(ValueError, match="position_limit"):
        WhisperEncoder(n_mels=8, d_model=16, n_heads=2, n_layers=1, ffn_dim=32, position_limit=0)


@pytest.mark.parametrize("mixer", [None, "bimamba2"])
@pytest.mark.parametrize("batch", ["padded", "one"])
def test_inference_path_equals_the_training_path(monkeypatch, mixer, batch):
    """At inference the layers add residuals into the mixer's output, run the feed-forward block in
    place frame block by frame block, apply GELU in place and add clamped positions by broadcasting:
    outputs and every layer's hidden state (kept by the caller, so never overwritten) equal the grad-
    enabled path's, for attention and a converted BiMamba2, padded batches and one full-length row."""
    from cald_asr.convert import convert_model
    from cald_asr.models.encoders import whisper

    monkeypatch.setattr(whisper, "FFN_BLOCK", 7)  # 3 blocks and a partial one on 25 frames
    torch.manual_seed(0)
    enc = WhisperEncoder(n_mels=8, d_model=16, n_heads=2, n_layers=2, ffn_dim=32, position_limit=20).eval()
    if mixer:

        class Holder(torch.nn.Module):  # convert_model works on a model holding an encoder
            def __init__(self):
                super().__init__()
                self.encoder = enc

        convert_model(Holder(), mixer, dict(d_state=4, headdim=8, chunk_size=4))
    feats, lengths = torch.randn(2, 50, 8), torch.tensor([50, 37])
    if batch == "one":
        feats, lengths = feats[:1], lengths[:1]
    whole = enc(feats, lengths)  # grad enabled: the whole-sequence path
    with torch.inference_mode():
        blocked = enc(feats, lengths)
    assert len(blocked.hidden_states) == 2
    for a, b in zip(blocked.hidden_states, whole.hidden_states):
        torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=1e-6)


def test_40s_input_runs(teacher, frontend, fsdd_16k):
    clip = np.concatenate([fsdd_16k(n) for n in ("0_george_5.wav", "9_yweweler_3.wav", "7_theo_12.wav")])
    clip = clip[: len(clip) // 320 * 320]  # a whole number of encoder frames (2 hops each)
    wav = np.resize(clip, 40 * 16000)  # the clip repeated
    feats = feats_of(frontend, wav)
    assert feats.shape == (1, 4000, 80)
    with torch.no_grad():
        out = teacher(feats).out
    assert out.shape == (1, 2000, 384) and torch.isfinite(out).all()
    # Encoder frames j and j + period see identical features; past frame 1500 only the extended positions
    # (and their effect on attention) tell them apart.
    period = len(clip) // 320
    j = 1700
    torch.testing.assert_close(feats[0, 2 * j - 2 : 2 * j + 2], feats[0, 2 * (j + period) - 2 : 2 * (j + period) + 2])
    assert (out[0, j] - out[0, j + period]).abs().max() > 1e-2


def _tiny_config(**overrides):
    cfg = dict(
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=128,
        vocab_size=100,
        max_target_positions=32,
        max_source_positions=1500,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    cfg.update(overrides)
    return WhisperConfig(**cfg)


@pytest.mark.parametrize("model_cls", [WhisperModel, WhisperForConditionalGeneration])
def test_from_hf_matches_transformers_encoder(tmp_path, model_cls):
    torch.manual_seed(0)
    hf = model_cls(_tiny_config()).eval()
    hf.save_pretrained(tmp_path)
    ours = WhisperEncoder.from_hf(tmp_path).eval()
    hf_encoder = hf.get_encoder()
    x = torch.randn(2, 80, 3000)  # transformers insists on exactly 2 x max_source_positions frames
    with torch.no_grad():
        ref = hf_encoder(x, output_hidden_states=True)
        got = ours(x.transpose(1, 2))
    torch.testing.assert_close(got.out, ref.last_hidden_state, atol=1e-5, rtol=1e-5)
    # transformers' hidden_states: the embedded input, then each layer (the last after the final norm).
    assert len(ref.hidden_states) == len(got.hidden_states) + 1
    for a, b in zip(got.hidden_states, ref.hidden_states[1:]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_from_hf_errors_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        WhisperEncoder.from_hf(tmp_path)
    _tiny_config().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        WhisperEncoder.from_hf(tmp_path)


def _stored_tensor_max(sd, key):
    """Max |w| of the tensor as CTranslate2 stores it: q, k and v projections are one fused tensor."""
    projs = ("q_proj", "k_proj", "v_proj")
    for proj in projs:
        if f".self_attn.{proj}." in key:
            return max(sd[key.replace(proj, p)].abs().max() for p in projs)
    return sd[key].abs().max()


@pytest.mark.parametrize("quantization, levels", [(None, None), ("int8", 127), ("int16", 1024)])
def test_from_ct2_of_a_converted_checkpoint_equals_from_hf(tmp_path, quantization, levels):
    """CTranslate2's own converter writes the transformers checkpoint as model.bin (fused q,k,v; int8 with a
    scale of 127 / max per output row, int16 with one scale of 2**10 / max per stored tensor); both
    loaders must build the same encoder."""
    torch.manual_seed(0)
    WhisperForConditionalGeneration(_tiny_config()).save_pretrained(tmp_path / "hf")
    ctranslate2.converters.TransformersConverter(str(tmp_path / "hf")).convert(
        str(tmp_path / "ct2"), quantization=quantization
    )
    from_hf = WhisperEncoder.from_hf(tmp_path / "hf").state_dict()
    from_ct2 = WhisperEncoder.from_ct2(tmp_path / "ct2" / "model.bin").state_dict()
    assert from_ct2.keys() == from_hf.keys()
    for key, ref in from_hf.items():
        err = (from_ct2[key] - ref).abs().max().item()
        if levels is None or not key.endswith("weight") or ref.dim() < 2:  # biases, norms, positions: float32
            assert err == 0, key
        else:
            # Rounding to the nearest step of max / levels errs by at most half a step.
            if levels == 127:
                row_max = ref.flatten(1).abs().amax(1)
            else:
                row_max = _stored_tensor_max(from_hf, key)
            bound = (row_max / levels / 2 * 1.001).reshape(-1, *[1] * (ref.dim() - 1))
            assert torch.all((from_ct2[key] - ref).abs() <= bound), key
            assert err > 0, key  # really quantised


def test_whisper_base_from_its_two_part_package_matches_ctranslate2(tmp_path, frontend, fsdd_16k):
    from cald_asr.models.encoders.whisper import default_whisper_base_paths

    try:
        parts = default_whisper_base_paths()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))
    base = WhisperEncoder.from_ct2(parts).eval()
    assert (base.d_model, len(base.layers), base.layers[0].self_attn.n_heads) == (512, 6, 8)
    # ctranslate2 reads one model.bin: join the halves as the package's users do
    (tmp_path / "model.bin").write_bytes(b"".join(p.read_bytes() for p in parts))
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        (tmp_path / name).write_bytes((parts[0].parent / name).read_bytes())
    ref_model = ctranslate2.models.Whisper(str(tmp_path), device="cpu", compute_type="float32", intra_threads=2)
    feats = feats_of(frontend, fsdd_16k("4_theo_2.wav"))
    ref = ct2_encode(ref_model, feats)
    with torch.no_grad():
        got = base(feats).out.numpy()
    np.testing.assert_allclose(got, ref, atol=CT2_TOL, rtol=0)
