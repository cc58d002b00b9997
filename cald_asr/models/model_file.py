"""The one model file format: a directory (or any two paths) holding

    config.yaml          what to build: model kind, front end, encoder (+ conf), mixer (+ conf), token list
    model.safetensors    every tensor, nothing else

Loading builds the architecture from the config (converting it when it names a mixer) and reads the
tensors strictly: no pickled objects are ever executed, and a missing, truncated or mismatching file is an
error naming the file. Writes go to a temporary file renamed into place, so a kill never leaves a torn
model behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_model as _st_load_model
from safetensors.torch import save_model as _st_save_model
from torch import nn

from cald_asr.convert import convert_model
from cald_asr.models.asr_ctc import ASRCTCModel
from cald_asr.models.registry import ENCODERS, FRONTENDS, build_encoder, build_frontend, name_of
from cald_asr.models.text_classifier import TextClassifier

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
MODEL_KINDS = ("asr_ctc", "text_cls")


class ModelFileError(ValueError):
    """A model config or weights file that cannot be used; the message names the file."""


def build_model(config: Dict[str, Any], source: str = "config") -> nn.Module:
    """A freshly initialised model with the architecture `config` describes."""
    kind = config.get("model", "asr_ctc")
    if kind not in MODEL_KINDS:
        raise ModelFileError(f"{source}: unknown model {kind!r}; known: {', '.join(MODEL_KINDS)}")
    try:
        encoder = build_encoder(config.get("encoder"), config.get("encoder_conf"), source)
        if kind == "asr_ctc":
            token_list = config.get("token_list")
            if not token_list:
                raise ModelFileError(f"{source}: an asr_ctc model needs its token_list")
            frontend = build_frontend(config.get("frontend"), config.get("frontend_conf"), source)
            model = ASRCTCModel(encoder, len(token_list), frontend, dropout=config.get("ctc_dropout", 0.0))
        else:
            labels = config.get("labels")
            if not labels:
                raise ModelFileError(f"{source}: a text_cls model needs its labels")
            model = TextClassifier(encoder, len(labels), config.get("pooling", "mean"),
                                   dropout=config.get("classifier_dropout", 0.1))
        if config.get("mixer"):
            convert_model(model, config["mixer"], config.get("mixer_conf"))
    except ModelFileError:
        raise
    except ValueError as e:
        msg = str(e)
        raise ModelFileError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    return model


def model_config(model: nn.Module, /, **fields) -> Dict[str, Any]:
    """The config that rebuilds `model`'s (unconverted) architecture; `fields` adds token_list, mixer, ..."""
    enc_name = name_of(ENCODERS, model.encoder)
    config: Dict[str, Any] = {
        "model": "asr_ctc" if isinstance(model, ASRCTCModel) else "text_cls",
        "encoder": enc_name,
        "encoder_conf": ENCODERS[enc_name].conf_of(model.encoder),
    }
    if isinstance(model, ASRCTCModel):
        fe = model.frontend
        config["frontend"] = None if fe is None else name_of(FRONTENDS, fe)
        config["frontend_conf"] = {} if fe is None else FRONTENDS[config["frontend"]].conf_of(fe)
    else:
        config["pooling"] = model.pooling
    config.update(fields)
    return config


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_model(model: nn.Module, config: Dict[str, Any], out_dir: os.PathLike | str) -> Path:
    """Write out_dir/config.yaml and out_dir/model.safetensors (weights first: a config never points at
    weights that are not there)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / WEIGHTS_NAME, lambda p: _st_save_model(model, str(p)))
    _atomic_write(out / CONFIG_NAME, lambda p: p.write_text(yaml.safe_dump(config, sort_keys=False)))
    return out


def read_config(path: os.PathLike | str) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model config not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ModelFileError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: expected a mapping of config keys")
    return config


def load_model(config_path: os.PathLike | str, weights_path: Optional[os.PathLike | str] = None
               ) -> Tuple[nn.Module, Dict[str, Any]]:
    """(model in eval mode, config). `config_path` may be the model directory."""
    config_path = Path(config_path)
    if config_path.is_dir():
        config_path = config_path / CONFIG_NAME
    weights = Path(weights_path) if weights_path is not None else config_path.with_name(WEIGHTS_NAME)
    config = read_config(config_path)
    model = build_model(config, str(config_path))
    if not weights.is_file():
        raise ModelFileError(f"{weights}: model weights not found")
    try:
        missing, unexpected = _st_load_model(model, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ModelFileError(f"{weights}: cannot read model weights ({e})") from None
    if missing or unexpected:
        raise ModelFileError(f"{weights}: weights do not match {config_path}: missing {sorted(missing)[:6]}, "
                             f"unexpected {sorted(unexpected)[:6]}")
    model.eval()
    return model, config
