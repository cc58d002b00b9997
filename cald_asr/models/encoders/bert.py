"""BERT / RoBERTa text encoder (Devlin et al., 2019; Liu et al., 2019) loading Hugging Face checkpoints.

Architecture (post-LN): embeddings = LayerNorm(word + position + token type), dropout; then per layer
    x = LayerNorm(x + dropout(self_attn(x)));  x = LayerNorm(x + dropout(W2 act(W1 x))).
Each layer's token mixer is a ``MultiHeadSelfAttention`` stored as ``self_attn``, the module conversion
replaces; every other parameter keeps its pretrained value.

Positions: BERT numbers tokens 0, 1, ...; RoBERTa numbers them padding_idx + 1, padding_idx + 2, ... and
gives padding the position padding_idx.  transformers decides "padding" from ``input_ids != pad_token_id``;
here it is decided by ``lengths`` (right padding), which is the same thing unless a valid token is the pad id.

Hidden states, for CALD's layer loss: ``hidden_states[i]`` is layer i's output, i.e. after its feed-forward
block, residual add and output LayerNorm.  BERT has no final encoder norm (each layer ends in one), so
``hidden_states[-1]`` is ``out``.  In transformers' ``output_hidden_states=True`` tuple (n_layers + 1 entries,
entry 0 being the embeddings), ours[i] == transformers[i + 1].  Padded positions are zero in every entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from cald_asr.models.attention import MultiHeadSelfAttention, length_mask
from cald_asr.models.encoders.output import EncoderOutput
from cald_asr.models.hf_checkpoint import Activation, load_checked, read_hf_config, read_hf_state_dict
from cald_asr.text.hf_tokenizer import default_minilm_path, load_tokenizer  # noqa: F401 (part of this API)

# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class BertConfig:
    model_type: str = "bert"  # "bert" or "roberta" (only the position numbering differs)
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    @classmethod
    def from_hf(cls, cfg: dict, source: str) -> "BertConfig":
        model_type = cfg.get("model_type")
        if model_type not in ("bert", "roberta"):
            raise ValueError(f"{source}: model_type {model_type!r} is not 'bert' or 'roberta'")
        pos = cfg.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(f"{source}: position_embedding_type {pos!r} is not supported (only 'absolute')")
        if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
            raise ValueError(f"{source}: decoder / cross-attention configurations are not encoders")
        kwargs = {}
        for name in cls.__dataclass_fields__:
            if name in cfg and cfg[name] is not None:
                kwargs[name] = cfg[name]
        for required in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
            if required not in kwargs:
                raise ValueError(f"{source}: missing config key {required!r}")
        return cls(**kwargs)

    @property
    def position_offset(self) -> int:
        return self.pad_token_id + 1 if self.model_type == "roberta" else 0


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor, valid: torch.Tensor, token_type_ids: Optional[torch.Tensor]
    ) -> torch.Tensor:
        B, L = input_ids.shape
        offset = self.cfg.position_offset
        positions = torch.arange(offset, offset + L, device=input_ids.device).expand(B, L)
        if self.cfg.model_type == "roberta":
            positions = positions.masked_fill(~valid, self.cfg.pad_token_id)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.layer_norm(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        d = cfg.hidden_size
        # The token mixer; conversion replaces it with any module of the same forward(x, lengths).
        self.self_attn = MultiHeadSelfAttention(
            d, cfg.num_attention_heads, bias=True, dropout=cfg.attention_probs_dropout_prob
        )
        self.attn_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(d, cfg.intermediate_size)
        self.act = Activation(cfg.hidden_act)
        self.ffn_out = nn.Linear(cfg.intermediate_size, d)
        self.final_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.attn_layer_norm(x + self.dropout(self.self_attn(x, lengths)))
        return self.final_layer_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.d_model = cfg.hidden_size
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    @property
    def max_length(self) -> int:
        return self.cfg.max_position_embeddings - self.cfg.position_offset

    def forward(
        self,
        input_ids: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
    ) -> EncoderOutput:
        """input_ids (B, L) right-padded, lengths (B,) -> EncoderOutput(out (B, L, D), lengths, hidden_states)."""
        if input_ids.dim() != 2:
            raise ValueError(f"BertEncoder expects input_ids (batch, length), got {tuple(input_ids.shape)}")
        B, L = input_ids.shape
        if L > self.max_length:
            raise ValueError(f"sequence length {L} exceeds the {self.max_length} positions this model has")
        if lengths is None:
            lengths = torch.full((B,), L, dtype=torch.long, device=input_ids.device)
        lengths = lengths.to(input_ids.device, torch.long)
        if lengths.shape != (B,) or bool((lengths > L).any()) or bool((lengths < 0).any()):
            raise ValueError(f"lengths {lengths.tolist()} do not fit a padded batch of shape {(B, L)}")
        valid = length_mask(lengths, L)
        # Whatever fills the padding (often -100 or the pad id) must not index out of the table.
        input_ids = input_ids.masked_fill(~valid, self.cfg.pad_token_id)
        bad = (input_ids < 0) | (input_ids >= self.cfg.vocab_size)
        if bool(bad.any()):
            b, t = [int(i) for i in bad.nonzero()[0]]
            raise ValueError(
                f"input_ids[{b}, {t}] = {int(input_ids[b, t])} is outside the vocabulary (size {self.cfg.vocab_size})"
            )
        if token_type_ids is not None:
            token_type_ids = token_type_ids.masked_fill(~valid, 0)

        pad = ~valid[..., None]
        x = self.embeddings(input_ids, valid, token_type_ids).masked_fill(pad, 0.0)
        hidden_states: List[torch.Tensor] = []
        for layer in self.layers:
            x = layer(x, lengths).masked_fill(pad, 0.0)
            hidden_states.append(x)
        return EncoderOutput(out=x, out_lengths=lengths, hidden_states=hidden_states)

    # ----------------------------------------------------------------------------------- loader

    @classmethod
    def from_pretrained(cls, model_dir: Union[str, Path], **overrides) -> "BertEncoder":
        """Encoder of a transformers BERT/RoBERTa directory (BertModel, RobertaModel or any task model
        whose weights sit under 'bert.' / 'roberta.'; pooler and task heads are ignored).

        overrides replace config values, e.g. hidden_dropout_prob=0.0.
        """
        model_dir = Path(model_dir)
        raw_cfg, cfg_path = read_hf_config(model_dir)
        unknown = sorted(set(overrides) - set(BertConfig.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown config overrides {unknown}")
        cfg = BertConfig.from_hf({**raw_cfg, **overrides}, str(cfg_path))
        model = cls(cfg)
        raw, source = read_hf_state_dict(model_dir)
        load_checked(model, _map_bert_keys(raw, cfg.model_type), source, f"{cfg.model_type} encoder")
        return model


_BERT_KEY_RULES: Sequence[Tuple[str, str]] = (
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.self_attn.out_proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_layer_norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.ffn_in."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.ffn_out."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.final_layer_norm."),
)
# Buffers transformers saves next to the weights; ours are computed.
_BERT_IGNORED = {"embeddings.position_ids", "embeddings.token_type_ids"}


def _map_bert_keys(raw: Dict[str, torch.Tensor], model_type: str) -> Dict[str, torch.Tensor]:
    prefix = f"{model_type}."
    if any(k.startswith(prefix) for k in raw):
        raw = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
    out: Dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if key in _BERT_IGNORED or not key.startswith(("embeddings.", "encoder.")):
            continue  # pooler, task heads
        # Original TensorFlow-converted BERT names LayerNorm parameters gamma / beta.
        key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
        for pattern, repl in _BERT_KEY_RULES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return out


# ----------------------------------------------------------------------------- tokenizer output as input
# (the tokenizer and the default checkpoint's directory are text tools: cald_asr.text.hf_tokenizer)


def tokenize(tokenizer, texts: Sequence[str], max_length: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids (B, L), lengths (B,)) for BertEncoder.forward, truncated to max_length."""
    if tokenizer.padding_side != "right":
        raise ValueError(f"tokenizer pads on the {tokenizer.padding_side}; BertEncoder expects right padding")
    enc = tokenizer(
        list(texts), padding=True, truncation=max_length is not None, max_length=max_length, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"].sum(dim=1)
