"""Wav2Vec2Encoder against transformers' Wav2Vec2Model on tiny random checkpoints of every variant."""

import json

import pytest
import torch

from cald_asr.models.attention import MultiHeadSelfAttention
from cald_asr.models.encoders.wav2vec2 import Wav2Vec2Encoder, load_wav2vec2_ctc_head

transformers = pytest.importorskip("transformers")

TOL = dict(atol=1e-5, rtol=1e-5)
# (feat_extract_norm, do_stable_layer_norm, positional conv width): both widths' parities get covered.
VARIANTS = [("group", False, 8), ("group", True, 5), ("layer", False, 5), ("layer", True, 8)]


def _hf_config(norm, stable, pos_width, **extra):
    return transformers.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8, 8),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        conv_bias=norm == "layer",
        num_conv_pos_embeddings=pos_width,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        do_stable_layer_norm=stable,
        **extra,
    )


def _saved(tmp_path, norm, stable, pos_width, cls=None, **extra):
    torch.manual_seed(0)
    ref = (cls or transformers.Wav2Vec2Model)(_hf_config(norm, stable, pos_width, **extra)).eval()
    ref.save_pretrained(tmp_path)
    return ref


def _wav(B, N, seed=1):
    return torch.randn(B, N, generator=torch.Generator().manual_seed(seed))


def _mask(lengths, N):
    return torch.arange(N)[None, :] < lengths[:, None]


@pytest.mark.parametrize("norm,stable,pos_width", VARIANTS)
def test_matches_transformers_without_padding(tmp_path, norm, stable, pos_width):
    ref = _saved(tmp_path, norm, stable, pos_width)
    model = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    wav = _wav(2, 1200)
    with torch.no_grad():
        ours = model(wav)
        theirs = ref(wav, output_hidden_states=True)
    n = len(model.layers)
    assert len(ours.hidden_states) == n == 3 and len(theirs.hidden_states) == n + 1
    # Entry 0 of transformers' tuple is layer 0's input; layer outputs follow.
    for i in range(n - 1):
        torch.testing.assert_close(ours.hidden_states[i], theirs.hidden_states[i + 1], **TOL, msg=f"layer {i}")
    last = theirs.hidden_states[n]
    if stable:  # transformers records the pre-LN encoder's last layer before the final norm
        with torch.no_grad():
            last = ref.encoder.layer_norm(last)
    torch.testing.assert_close(ours.hidden_states[-1], last, **TOL)
    torch.testing.assert_close(ours.out, theirs.last_hidden_state, **TOL)
    assert ours.out is ours.hidden_states[-1]
    expected_lengths = ref._get_feat_extract_output_lengths(torch.tensor([1200, 1200]))
    assert ours.out_lengths.tolist() == expected_lengths.tolist() == [theirs.last_hidden_state.shape[1]] * 2
    assert all(type(layer.self_attn) is MultiHeadSelfAttention for layer in model.layers)


@pytest.mark.parametrize("stable", [False, True])
def test_layer_variant_padded_batch_matches_transformers_and_singles(tmp_path, fsdd_16k, stable):
    ref = _saved(tmp_path, "layer", stable, 8)
    model = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    clips = [torch.from_numpy(fsdd_16k(name)) for name in ("0_jackson_0.wav", "7_theo_3.wav", "3_nicolas_12.wav")]
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    with torch.no_grad():
        ours = model(wav, lengths)
        theirs = ref(wav, attention_mask=_mask(lengths, wav.shape[1]).long())
    T = ours.out_lengths
    assert T.tolist() == ref._get_feat_extract_output_lengths(lengths).tolist()
    assert len(set(T.tolist())) == 3
    for b in range(3):
        torch.testing.assert_close(ours.out[b, : T[b]], theirs.last_hidden_state[b, : T[b]], **TOL)
        with torch.no_grad():
            alone = model(clips[b][None])
        for i, (hb, ha) in enumerate(zip(ours.hidden_states, alone.hidden_states)):
            torch.testing.assert_close(hb[b, : T[b]], ha[0], **TOL, msg=f"layer {i} item {b}")
            assert torch.all(hb[b, T[b] :] == 0)


def test_group_variant_masks_its_time_statistics(tmp_path):
    """transformers normalises the group variant over the padded row; we normalise over valid frames, so a padded
    batch still equals each utterance alone (and equals transformers for the unpadded one)."""
    ref = _saved(tmp_path, "group", False, 8)
    model = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    wav, lengths = _wav(2, 1500), torch.tensor([1500, 700])
    with torch.no_grad():
        batch = model(wav, lengths)
        short = model(wav[1:, :700])
        short_hf = ref(wav[1:, :700]).last_hidden_state
    T = batch.out_lengths
    torch.testing.assert_close(batch.out[1, : T[1]], short.out[0], **TOL)
    torch.testing.assert_close(short.out[0], short_hf[0], **TOL)
    # The padding is zeroed before the extractor: whatever fills it does not matter.
    with torch.no_grad():
        junk = model(wav.masked_fill(~_mask(lengths, 1500), 5.0), lengths)
    torch.testing.assert_close(junk.out, batch.out, **TOL)


def test_legacy_weight_norm_names_load_the_same(tmp_path):
    from safetensors.torch import load_file, save_file

    ref = _saved(tmp_path, "layer", True, 5)
    new = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    path = tmp_path / "model.safetensors"
    sd = load_file(str(path))
    prefix = "encoder.pos_conv_embed.conv."
    sd[prefix + "weight_g"] = sd.pop(prefix + "parametrizations.weight.original0")
    sd[prefix + "weight_v"] = sd.pop(prefix + "parametrizations.weight.original1")
    save_file(sd, str(path), metadata={"format": "pt"})
    old = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(old.pos_conv_embed.conv.weight, new.pos_conv_embed.conv.weight, atol=0, rtol=0)
    torch.testing.assert_close(new.pos_conv_embed.conv.weight, ref.encoder.pos_conv_embed.conv.weight, **TOL)


def test_ctc_checkpoint_loads_with_its_head(tmp_path):
    ref = _saved(tmp_path, "group", False, 8, cls=transformers.Wav2Vec2ForCTC, vocab_size=6)
    tokens = ["<pad>", "<s>", "</s>", "<unk>", "|", "E"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    model = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    head = load_wav2vec2_ctc_head(tmp_path)
    assert head.vocab == tokens and head.weight.shape == (6, 16) and head.bias.shape == (6,)
    wav = _wav(1, 900)
    with torch.no_grad():
        logits = torch.nn.functional.linear(model(wav).out, head.weight, head.bias)
        torch.testing.assert_close(logits, ref(wav).logits, **TOL)


def test_plain_model_has_no_ctc_head(tmp_path):
    _saved(tmp_path, "layer", False, 5)
    with pytest.raises(ValueError, match=r"model.safetensors: no lm_head"):
        load_wav2vec2_ctc_head(tmp_path)


def test_bad_inputs_and_directories_are_named(tmp_path):
    _saved(tmp_path, "layer", False, 5)
    model = Wav2Vec2Encoder.from_pretrained(tmp_path).eval()
    assert model.cfg.receptive_field == 10 + 2 * 5 + 2 * 10
    with pytest.raises(ValueError, match="utterance 1 of the batch has 20 samples"):
        model(_wav(2, 100), torch.tensor([100, 20]))
    with pytest.raises(ValueError, match="shorter than one frame's receptive field"):
        model(_wav(1, 30))
    with pytest.raises(ValueError, match="do not fit"):
        model(_wav(1, 100), torch.tensor([101]))
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        Wav2Vec2Encoder.from_pretrained(tmp_path / "absent")
    assert Wav2Vec2Encoder.from_pretrained(tmp_path, layerdrop=0.0).cfg.layerdrop == 0.0
    with pytest.raises(TypeError, match="layer_drop"):
        Wav2Vec2Encoder.from_pretrained(tmp_path, layer_drop=0.0)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "add_adapter": True}))
    with pytest.raises(ValueError, match=r"config.json: add_adapter"):
        Wav2Vec2Encoder.from_pretrained(tmp_path)
