"""Wav2Vec2 speech encoder (Baevski et al., 2020) loading Hugging Face ``Wav2Vec2Model`` / ``Wav2Vec2ForCTC``.

Architecture:
- Feature extractor: 1-D convolutions over the waveform (no padding), each followed by a norm and GELU.
  "group" variant (base): only conv 0 is normalised, by a GroupNorm with one group per channel, i.e. each
  channel normalised over *time*.  "layer" variant (large): every conv followed by a LayerNorm over channels.
- Feature projection: LayerNorm, Linear to d_model, dropout.
- Positional convolution: grouped Conv1d of width K over time (padding K // 2, last frame dropped when K is
  even), GELU, added to the input.  Checkpoints store it weight-normalised (weight = g * v / ||v||, norm over
  all axes but the kernel axis), as weight_g / weight_v or parametrizations.weight.original0 / original1; the
  effective weight is computed once at load time and kept as a plain Conv1d weight.
- do_stable_layer_norm False (base, post-LN): x = LN(x + pos); per layer
  x = LN1(x + drop(self_attn(x))); x = LN2(x + FFN(x)).  No final encoder norm.
- do_stable_layer_norm True (large, pre-LN): x = x + pos; per layer
  x = x + drop(self_attn(LN1(x))); x = x + FFN(LN2(x)); then a final encoder LayerNorm.
Each layer's token mixer is a ``MultiHeadSelfAttention`` stored as ``self_attn``.

Hidden states, for CALD's layer loss: ``hidden_states[i]`` is layer i's output after its feed-forward block
(residual added; for post-LN layers also after the layer's closing LayerNorm).  For the pre-LN variant the
last entry is taken after the final encoder LayerNorm, so in both variants ``hidden_states[-1]`` is ``out``.
Against transformers' ``output_hidden_states=True`` tuple (n_layers + 1 entries, entry 0 being the input to
layer 0): ours[i] == transformers[i + 1] for every layer of the post-LN variant and for i < n_layers - 1 of the
pre-LN one; the pre-LN's last entry equals transformers' ``last_hidden_state`` (transformers 5 leaves its
hidden_states[-1] before the final norm; transformers 4 put it after).  Padded frames are zero in every entry.

Padding.  Valid output frames of an unpadded convolution depend only on valid input samples, attention masks
padded keys, and everything else acts frame by frame, so with ``wav_lengths`` a batch gives each utterance
exactly what it would get alone, with one exception handled here on purpose: the "group" variant's GroupNorm
averages over time, so here its statistics are taken over each utterance's valid frames only.  transformers
takes them over the whole padded row (and its processors send no attention mask for "group" models at all), so
for padded "group" batches our valid frames are the single-utterance result, not transformers' batch result.
Passing ``wav_lengths=None`` treats every sample as valid and reproduces transformers' maskless batch exactly.
SpecAugment-style masking (``masked_spec_embed``) is not implemented; that checkpoint entry is ignored.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from cald_asr.models.attention import MultiHeadSelfAttention, length_mask
from cald_asr.models.encoders.output import EncoderOutput
from cald_asr.models.hf_checkpoint import Activation, load_checked, read_hf_config, read_hf_state_dict


@dataclass(frozen=True)
class Wav2Vec2Config:
    conv_dim: Tuple[int, ...] = (512,) * 7
    conv_kernel: Tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: Tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.1

    def __post_init__(self):
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) > 0):
            raise ValueError(
                f"conv_dim, conv_kernel, conv_stride must have the same non-zero length, got "
                f"{len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}"
            )
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm {self.feat_extract_norm!r} is not 'group' or 'layer'")

    @classmethod
    def from_hf(cls, cfg: dict, source: str) -> "Wav2Vec2Config":
        model_type = cfg.get("model_type", "wav2vec2")
        if model_type != "wav2vec2":
            raise ValueError(f"{source}: model_type {model_type!r} is not 'wav2vec2'")
        if cfg.get("add_adapter"):
            raise ValueError(f"{source}: add_adapter=true (output adapter layers) is not supported")
        if cfg.get("adapter_attn_dim") is not None:
            raise ValueError(f"{source}: adapter_attn_dim is set (attention adapters) and is not supported")
        kwargs = {}
        for name in cls.__dataclass_fields__:
            if name in cfg and cfg[name] is not None:
                value = cfg[name]
                kwargs[name] = tuple(value) if isinstance(value, list) else value
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (400 for the standard extractor)."""
        field, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride):
            field += (k - 1) * jump
            jump *= s
        return field


def conv_output_lengths(cfg: Wav2Vec2Config, wav_lengths: torch.Tensor, n_layers: Optional[int] = None) -> torch.Tensor:
    """Frames after the first n_layers convolutions (all by default): floor((n - k) / s) + 1 each, floored at 0."""
    n = wav_lengths
    for k, s in list(zip(cfg.conv_kernel, cfg.conv_stride))[:n_layers]:
        n = torch.clamp(torch.div(n - k, s, rounding_mode="floor") + 1, min=0)
    return n


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm with one group per channel whose mean and variance run over each row's valid frames."""

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if lengths is None:
            return super().forward(x)
        valid = length_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)  # (B, 1, T)
        count = valid.sum(-1, keepdim=True).clamp(min=1.0)
        mean = (x * valid).sum(-1, keepdim=True) / count
        var = (((x - mean) * valid) ** 2).sum(-1, keepdim=True) / count
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight[:, None] + self.bias[:, None]


class ConvLayer(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, i: int):
        super().__init__()
        c_in = cfg.conv_dim[i - 1] if i > 0 else 1
        c_out = cfg.conv_dim[i]
        self.conv = nn.Conv1d(c_in, c_out, cfg.conv_kernel[i], stride=cfg.conv_stride[i], bias=cfg.conv_bias)
        self.norm_kind = (
            "group"
            if cfg.feat_extract_norm == "group" and i == 0
            else ("layer" if cfg.feat_extract_norm == "layer" else "none")
        )
        if self.norm_kind == "group":
            self.layer_norm = MaskedGroupNorm(c_out, c_out, affine=True)
        elif self.norm_kind == "layer":
            self.layer_norm = nn.LayerNorm(c_out)
        self.act = Activation(cfg.feat_extract_activation)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, C_in, N) -> (B, C_out, N'); lengths are this layer's *output* lengths."""
        x = self.conv(x)
        if self.norm_kind == "group":
            x = self.layer_norm(x, lengths)
        elif self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.act(x)


class FeatureExtractor(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.cfg = cfg
        self.conv_layers = nn.ModuleList(ConvLayer(cfg, i) for i in range(len(cfg.conv_dim)))

    def forward(self, wav: torch.Tensor, wav_lengths: Optional[torch.Tensor]) -> torch.Tensor:
        x = wav[:, None, :]
        for i, layer in enumerate(self.conv_layers):
            lengths = None if wav_lengths is None else conv_output_lengths(self.cfg, wav_lengths, i + 1)
            x = layer(x, lengths)
        return x.transpose(1, 2)


class FeatureProjection(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim[-1], cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.feat_proj_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.projection(self.layer_norm(x)))


class PositionalConv(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        self.conv = nn.Conv1d(
            cfg.hidden_size, cfg.hidden_size, k, padding=k // 2, groups=cfg.num_conv_pos_embedding_groups
        )
        # With an even width, padding k // 2 on both sides yields one frame too many.
        self.trim = 1 if k % 2 == 0 else 0
        self.act = Activation(cfg.feat_extract_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) with padded frames zero -> (B, T, D)."""
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[..., : -self.trim]
        return self.act(y).transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = Activation(cfg.hidden_act)
        self.intermediate_dropout = nn.Dropout(cfg.activation_dropout)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.output_dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dropout(self.output_dense(self.intermediate_dropout(self.act(self.intermediate_dense(x)))))


class Wav2Vec2Layer(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.pre_ln = cfg.do_stable_layer_norm
        # The token mixer; conversion replaces it with any module of the same forward(x, lengths).
        self.self_attn = MultiHeadSelfAttention(
            cfg.hidden_size, cfg.num_attention_heads, bias=True, dropout=cfg.attention_dropout
        )
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.dropout(self.self_attn(self.layer_norm(x), lengths))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.dropout(self.self_attn(x, lengths)))
        return self.final_layer_norm(x + self.feed_forward(x))


class Wav2Vec2Encoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.cfg = cfg
        self.d_model = cfg.hidden_size
        self.feature_extractor = FeatureExtractor(cfg)
        self.feature_projection = FeatureProjection(cfg)
        self.pos_conv_embed = PositionalConv(cfg)
        # Post-LN: applied to (features + positions) before layer 0; pre-LN: after the last layer.
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layers = nn.ModuleList(Wav2Vec2Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def output_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(self.cfg, wav_lengths)

    def forward(self, wav: torch.Tensor, wav_lengths: Optional[torch.Tensor] = None) -> EncoderOutput:
        """wav (B, N) raw 16 kHz samples (normalised as the checkpoint's feature extractor expects), wav_lengths
        (B,) or None (all valid) -> EncoderOutput(out (B, T, D), out_lengths (B,), hidden_states)."""
        if wav.dim() != 2:
            raise ValueError(f"Wav2Vec2Encoder expects wav (batch, samples), got {tuple(wav.shape)}")
        B, N = wav.shape
        field = self.cfg.receptive_field
        if N < field:
            raise ValueError(f"waveforms of {N} samples are shorter than one frame's receptive field ({field})")
        masked = wav_lengths is not None
        if masked:
            wav_lengths = wav_lengths.to(wav.device, torch.long)
            if wav_lengths.shape != (B,) or bool((wav_lengths > N).any()):
                raise ValueError(f"wav_lengths {wav_lengths.tolist()} do not fit a padded batch of shape {(B, N)}")
            short = (wav_lengths < field).nonzero()
            if len(short):
                b = int(short[0])
                raise ValueError(
                    f"utterance {b} of the batch has {int(wav_lengths[b])} samples, fewer than one "
                    f"frame's receptive field ({field})"
                )
            wav = wav.masked_fill(~length_mask(wav_lengths, N), 0.0)
        else:
            wav_lengths = torch.full((B,), N, dtype=torch.long, device=wav.device)

        x = self.feature_projection(self.feature_extractor(wav, wav_lengths if masked else None))
        out_lengths = self.output_lengths(wav_lengths)
        pad = ~length_mask(out_lengths, x.shape[1])[..., None]
        x = x.masked_fill(pad, 0.0)
        x = x + self.pos_conv_embed(x)
        if not self.cfg.do_stable_layer_norm:
            x = self.layer_norm(x)
        x = self.dropout(x)

        hidden_states: List[torch.Tensor] = []
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if not (self.training and self.cfg.layerdrop > 0 and float(torch.rand(())) < self.cfg.layerdrop):
                x = layer(x, out_lengths if masked else None)
            if self.cfg.do_stable_layer_norm and i == n - 1:
                x = self.layer_norm(x)
            x = x.masked_fill(pad, 0.0)
            hidden_states.append(x)
        if n == 0 and self.cfg.do_stable_layer_norm:
            x = self.layer_norm(x).masked_fill(pad, 0.0)
        return EncoderOutput(out=x, out_lengths=out_lengths, hidden_states=hidden_states)

    # ----------------------------------------------------------------------------------- loader

    @classmethod
    def from_pretrained(cls, name_or_dir: Union[str, Path], **overrides) -> "Wav2Vec2Encoder":
        """Encoder of a transformers Wav2Vec2Model / Wav2Vec2ForCTC (or other task model) directory, or of a hub
        id when it is in the local cache or the hub is reachable.  Task heads are ignored (see
        ``load_wav2vec2_ctc_head``).  overrides replace config values, e.g. layerdrop=0.0."""
        model_dir = resolve_pretrained_dir(name_or_dir)
        raw_cfg, cfg_path = read_hf_config(model_dir)
        unknown = sorted(set(overrides) - set(Wav2Vec2Config.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown config overrides {unknown}")
        cfg = Wav2Vec2Config.from_hf({**raw_cfg, **overrides}, str(cfg_path))
        model = cls(cfg)
        raw, source = read_hf_state_dict(model_dir)
        load_checked(model, _map_wav2vec2_keys(raw, source), source, "Wav2Vec2 encoder")
        return model


_W2V_KEY_RULES: Sequence[Tuple[str, str]] = (
    (r"^encoder\.layers\.(\d+)\.attention\.", r"layers.\1.self_attn."),
    (r"^encoder\.", ""),
)
_POS_V = ("encoder.pos_conv_embed.conv.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1")
_POS_G = ("encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0")


def _strip_prefix(raw: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    if any(k.startswith("wav2vec2.") for k in raw):
        return {k[len("wav2vec2.") :]: v for k, v in raw.items() if k.startswith("wav2vec2.")}
    return raw


def _map_wav2vec2_keys(raw: Dict[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    raw = _strip_prefix(raw)
    v = next((raw[k] for k in _POS_V if k in raw), None)
    g = next((raw[k] for k in _POS_G if k in raw), None)
    if "encoder.pos_conv_embed.conv.weight" in raw:
        weight = raw["encoder.pos_conv_embed.conv.weight"]
    elif v is not None and g is not None:
        # Weight norm over the kernel axis (dim 2): one g per tap, v normalised over (out, in / groups).
        weight = g.float() * v.float() / v.float().norm(dim=(0, 1), keepdim=True)
    else:
        raise ValueError(
            f"{source}: no positional convolution weight (encoder.pos_conv_embed.conv.weight, "
            "weight_g/weight_v or parametrizations.weight.original0/original1)"
        )
    out: Dict[str, torch.Tensor] = {"pos_conv_embed.conv.weight": weight}
    for key, value in raw.items():
        if key in _POS_V or key in _POS_G or key == "encoder.pos_conv_embed.conv.weight":
            continue
        if not key.startswith(("feature_extractor.", "feature_projection.", "encoder.")):
            continue  # masked_spec_embed, quantizer, heads
        for pattern, repl in _W2V_KEY_RULES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return out


# ----------------------------------------------------------------------------- CTC head and hub


class CTCHead(NamedTuple):
    weight: torch.Tensor  # (vocab, D)
    bias: torch.Tensor  # (vocab,)
    vocab: Optional[List[str]]  # token of each output row, from vocab.json; None when the directory has none


def load_wav2vec2_ctc_head(name_or_dir: Union[str, Path]) -> CTCHead:
    """The ``lm_head`` of a Wav2Vec2ForCTC checkpoint and its vocabulary (row i of weight scores vocab[i])."""
    model_dir = resolve_pretrained_dir(name_or_dir)
    raw, source = read_hf_state_dict(model_dir)
    if "lm_head.weight" not in raw or "lm_head.bias" not in raw:
        raise ValueError(f"{source}: no lm_head.weight / lm_head.bias; not a Wav2Vec2ForCTC checkpoint")
    weight, bias = raw["lm_head.weight"].float(), raw["lm_head.bias"].float()
    vocab = None
    vocab_path = model_dir / "vocab.json"
    if vocab_path.is_file():
        table = json.loads(vocab_path.read_text())
        if table and all(isinstance(v, dict) for v in table.values()):
            raise ValueError(f"{vocab_path}: per-language vocabularies are not supported")
        ids = sorted(table.values())
        if ids != list(range(len(ids))):
            raise ValueError(f"{vocab_path}: token ids are not 0..{len(ids) - 1} without gaps")
        vocab = [tok for tok, _ in sorted(table.items(), key=lambda kv: kv[1])]
        if len(vocab) != weight.shape[0]:
            warnings.warn(f"{vocab_path}: {len(vocab)} tokens but lm_head has {weight.shape[0]} rows")
    return CTCHead(weight, bias, vocab)


def resolve_pretrained_dir(name_or_dir: Union[str, Path]) -> Path:
    """A local checkpoint directory as is; otherwise a hub id, from the local cache first, then downloaded."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    name = str(name_or_dir)
    if path.exists() or path.is_absolute() or name.startswith(".") or name.count("/") != 1:
        raise FileNotFoundError(f"{name}: not a model directory (and not a hub id of the form 'owner/name')")
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "vocab.json", "*.safetensors", "model.safetensors.index.json"]
    errors = []
    for local_only in (True, False):
        try:
            found = Path(snapshot_download(name, allow_patterns=patterns, local_files_only=local_only))
            if not any(found.glob("*.safetensors")):
                found = Path(snapshot_download(name, allow_patterns=["pytorch_model.bin"], local_files_only=local_only))
            if (found / "config.json").is_file():
                return found
            errors.append(f"{found} has no config.json")
        except Exception as exc:  # offline, unknown repo, gated: all reported together below
            errors.append(f"{type(exc).__name__}: {exc}")
    raise FileNotFoundError(
        f"{name}: no such directory, and the hub id could not be fetched (cache: {errors[0]}; hub: {errors[-1]})"
    )
