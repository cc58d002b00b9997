"""BertEncoder against transformers: the real all-MiniLM-L6-v2 on SST-2 sentences, and a random RoBERTa."""

from pathlib import Path

import pytest
import torch

from cald_asr.models.attention import MultiHeadSelfAttention
from cald_asr.models.encoders.bert import BertEncoder, default_minilm_path, load_tokenizer, tokenize

transformers = pytest.importorskip("transformers")

SST2_DEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sst2" / "dev.tsv"
TOL = dict(atol=1e-5, rtol=1e-5)


def _valid(lengths: torch.Tensor, L: int) -> torch.Tensor:
    return torch.arange(L)[None, :] < lengths[:, None]


def _assert_matches_hf(ours, ref, lengths):
    """ours.hidden_states[i] is layer i's output = transformers' hidden_states[i + 1] (entry 0 is the embeddings)."""
    assert len(ref.hidden_states) == len(ours.hidden_states) + 1
    for i, h in enumerate(ours.hidden_states):
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(h[b, :n], ref.hidden_states[i + 1][b, :n], **TOL, msg=f"layer {i} item {b}")
            assert torch.all(h[b, n:] == 0), f"layer {i} item {b}: padded positions are not zero"
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours.out[b, :n], ref.last_hidden_state[b, :n], **TOL)
    assert ours.out is ours.hidden_states[-1]


@pytest.fixture(scope="module")
def minilm():
    try:
        path = default_minilm_path()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        pytest.skip(str(exc))
    return path, BertEncoder.from_pretrained(path).eval(), load_tokenizer(path)


@pytest.fixture(scope="module")
def sst2_sentences():
    if not SST2_DEV.is_file():
        pytest.skip(f"SST-2 dev set not found at {SST2_DEV}")
    rows = [line.split("\t", 1)[1] for line in SST2_DEV.read_text().splitlines()[1:] if "\t" in line]
    # Three lengths far apart, so the batch has both short and long padding.
    by_len = sorted(rows[:100], key=len)
    return [by_len[0], by_len[50], by_len[-1]]


def test_minilm_matches_transformers_on_sst2(minilm, sst2_sentences):
    path, model, tok = minilm
    ids, lengths = tokenize(tok, sst2_sentences)
    assert len(set(lengths.tolist())) == 3
    ref = transformers.AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    with torch.no_grad():
        ours = model(ids, lengths)
        theirs = ref(input_ids=ids, attention_mask=_valid(lengths, ids.shape[1]).long(), output_hidden_states=True)
    assert len(ours.hidden_states) == 6 and ours.out.shape == (3, ids.shape[1], 384)
    assert torch.equal(ours.out_lengths, lengths)
    _assert_matches_hf(ours, theirs, lengths)


def test_minilm_padding_invariance(minilm, sst2_sentences):
    _, model, tok = minilm
    ids, lengths = tokenize(tok, sst2_sentences)
    # Padding filled with junk ids must not matter either.
    ids = ids.masked_fill(~_valid(lengths, ids.shape[1]), 999)
    with torch.no_grad():
        batch = model(ids, lengths)
        for b, n in enumerate(lengths.tolist()):
            alone = model(ids[b : b + 1, :n])
            for i, (hb, ha) in enumerate(zip(batch.hidden_states, alone.hidden_states)):
                torch.testing.assert_close(hb[b, :n], ha[0], **TOL, msg=f"layer {i} item {b}")


def test_every_token_mixer_is_our_attention(minilm):
    _, model, _ = minilm
    assert [type(layer.self_attn) for layer in model.layers] == [MultiHeadSelfAttention] * 6


def _random_roberta_dir(tmp_path, head: bool):
    cfg = transformers.RobertaConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=24,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    cls = transformers.RobertaForSequenceClassification if head else transformers.RobertaModel
    ref = cls(cfg).eval()
    ref.save_pretrained(tmp_path)
    return ref.roberta if head else ref


@pytest.mark.parametrize("head", [False, True], ids=["RobertaModel", "RobertaForSequenceClassification"])
def test_random_roberta_matches_transformers(tmp_path, head):
    ref = _random_roberta_dir(tmp_path, head)
    model = BertEncoder.from_pretrained(tmp_path).eval()
    assert model.cfg.model_type == "roberta" and model.max_length == 24 - 2
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([22, 7, 13])
    ids = torch.randint(3, 60, (3, 22), generator=g)
    ids = ids.masked_fill(~_valid(lengths, 22), 1)  # RoBERTa pads with pad_token_id
    with torch.no_grad():
        ours = model(ids, lengths)
        theirs = ref(input_ids=ids, attention_mask=_valid(lengths, 22).long(), output_hidden_states=True)
    _assert_matches_hf(ours, theirs, lengths)


def test_bad_inputs_are_named(tmp_path):
    _random_roberta_dir(tmp_path, head=False)
    model = BertEncoder.from_pretrained(tmp_path).eval()
    ids = torch.full((2, 5), 4)
    ids[1, 3] = 60
    with pytest.raises(ValueError, match=r"input_ids\[1, 3\] = 60"):
        model(ids, torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="exceeds the 22 positions"):
        model(torch.full((1, 23), 4))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.full((1, 5), 4), torch.tensor([6]))


def test_loader_rejects_other_model_types(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "hidden_size": 8}')
    with pytest.raises(ValueError, match=r"config.json: model_type 'gpt2'"):
        BertEncoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        BertEncoder.from_pretrained(tmp_path / "absent")
