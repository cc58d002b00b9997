"""The tables that turn a model config's names into modules: front ends, encoders, pretrained loaders.

A model config (flat YAML, ESPnet style) names its parts; `conf` dicts are constructor arguments, so a
saved config rebuilds the exact architecture:

    frontend: whisper_logmel        # or null: the encoder reads the dumped features / waveform itself
    frontend_conf: {n_mels: 80}
    encoder: whisper
    encoder_conf: {n_mels: 80, d_model: 384, n_heads: 6, n_layers: 4, ffn_dim: 1536, ...}
    mixer: bimamba2                 # absent/null for the transformer teacher; see cald_asr.convert
    mixer_conf: {d_state: 128, ...}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from torch import nn

from cald_asr.frontend import WhisperLogMel
from cald_asr.models.encoders.bert import BertConfig, BertEncoder, default_minilm_path
from cald_asr.models.encoders.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder
from cald_asr.models.encoders.whisper import WhisperEncoder, default_whisper_base_paths, default_whisper_tiny_en_path
from cald_asr.registry import Registry


def _dataclass_from_conf(cls, conf: Dict[str, Any]):
    # YAML has no tuples; restore them where the dataclass default is one.
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(conf) - set(fields))
    if unknown:
        raise TypeError(f"unknown {cls.__name__} keys {unknown}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in conf.items()}
    return cls(**fixed)


def _dataclass_to_conf(obj) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


@dataclass(frozen=True)
class EncoderEntry:
    cls: type
    build: Callable[[Dict[str, Any]], nn.Module]  # encoder_conf -> freshly initialised encoder
    conf_of: Callable[[nn.Module], Dict[str, Any]]  # encoder -> the encoder_conf that rebuilds it
    input: str  # what forward() reads: "feats", "wav" or "token_ids"


ENCODERS: Registry[EncoderEntry] = Registry(
    "encoder",
    {
        "whisper": EncoderEntry(WhisperEncoder, lambda c: WhisperEncoder(**c), lambda e: dict(e.conf), "feats"),
        "wav2vec2": EncoderEntry(
            Wav2Vec2Encoder,
            lambda c: Wav2Vec2Encoder(_dataclass_from_conf(Wav2Vec2Config, c)),
            lambda e: _dataclass_to_conf(e.cfg),
            "wav",
        ),
        "bert": EncoderEntry(
            BertEncoder,
            lambda c: BertEncoder(_dataclass_from_conf(BertConfig, c)),
            lambda e: _dataclass_to_conf(e.cfg),
            "token_ids",
        ),
    },
)

try:
    from cald_asr.models.encoders.espnet_conformer import EspnetSpeechEncoder
except ImportError as e:  # the [espnet] extra is not installed
    _ESPNET_MISSING = str(e)

    def _needs_espnet(conf):
        raise ValueError(_ESPNET_MISSING)

    ENCODERS["espnet_conformer"] = EncoderEntry(type(None), _needs_espnet, lambda e: {}, "wav_or_feats")
else:
    ENCODERS["espnet_conformer"] = EncoderEntry(
        EspnetSpeechEncoder, EspnetSpeechEncoder.from_conf, lambda e: dict(e.conf), "wav_or_feats"
    )


@dataclass(frozen=True)
class FrontendEntry:
    cls: type
    conf_of: Callable[[nn.Module], Dict[str, Any]]


FRONTENDS: Registry[FrontendEntry] = Registry(
    "frontend",
    {
        "whisper_logmel": FrontendEntry(WhisperLogMel, lambda f: {"n_mels": f.n_mels}),
    },
)


def name_of(table: Dict[str, Any], module: nn.Module) -> str:
    """The registered name of `module`'s class in ENCODERS or FRONTENDS."""
    for name, entry in table.items():
        if type(module) is entry.cls:
            return name
    raise TypeError(f"{type(module).__name__} is not registered")


def build_encoder(name: str, conf: Dict[str, Any], source: str = "config") -> nn.Module:
    entry = ENCODERS.lookup(name, source)
    try:
        return entry.build(dict(conf or {}))
    except TypeError as e:
        raise ValueError(f"{source}: bad encoder_conf for {name!r}: {e}") from None


def build_frontend(name: Optional[str], conf: Dict[str, Any], source: str = "config") -> Optional[nn.Module]:
    if name is None:
        return None
    entry = FRONTENDS.lookup(name, source)
    try:
        return entry.cls(**(conf or {}))
    except TypeError as e:
        raise ValueError(f"{source}: bad frontend_conf for {name!r}: {e}") from None


def _default_path(path, default):
    return default() if path in (None, "default") else path


def _whisper_ct2_path(path):
    # named teachers that ship as PyPI packages; anything else is a model.bin path
    named = {
        "default": default_whisper_tiny_en_path,
        "tiny.en": default_whisper_tiny_en_path,
        "base": default_whisper_base_paths,
    }
    return named[path or "default"]() if (path or "default") in named else path


def _espnet_encoder(path):
    from cald_asr.models.encoders.espnet_conformer import espnet_to_asr_ctc, load_espnet_asr

    p = Path(path)
    return espnet_to_asr_ctc(load_espnet_asr(p / "config.yaml", p / "model.pth")).encoder


# Pretrained encoder loaders by format: path -> encoder with its pretrained weights. "default" picks the
# weights that ship with the teacher packages (Whisper tiny.en, all-MiniLM-L6-v2); whisper_ct2 also
# knows "base" (the two-part Whisper base package).
PRETRAINED: Registry[Callable[[Optional[str]], nn.Module]] = Registry(
    "pretrained format",
    {
        "whisper_ct2": lambda p: WhisperEncoder.from_ct2(_whisper_ct2_path(p)),
        "whisper_hf": lambda p: WhisperEncoder.from_hf(p),
        "wav2vec2_hf": lambda p: Wav2Vec2Encoder.from_pretrained(p),
        "bert_hf": lambda p: BertEncoder.from_pretrained(_default_path(p, default_minilm_path)),
        "espnet": _espnet_encoder,  # an ESPnet experiment dir holding config.yaml + model.pth
    },
)


def load_pretrained_encoder(fmt: str, path: Optional[str], source: str = "config") -> nn.Module:
    return PRETRAINED.lookup(fmt, source)(path)
