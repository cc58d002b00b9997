"""The one model file format: a directory (or any two paths) holding

    config.yaml          what to build: model kind, front end, encoder (+ conf), mixer (+ conf), token list
    model.safetensors    every tensor, nothing else

Loading builds the architecture from the config (converting it when it names a mixer) and reads the
tensors strictly: no pickled objects are ever executed, and a missing, truncated or mismatching file is an
error naming the file. A config carries `format_version` (major.minor): a config of a newer major version,
or with a key this version does not know (a typo, or a field of a newer cald-asr), is refused with the key
named, not silently ignored; configs written before versions existed (none) load as 1.0.

A model dir is written whole: both files go into a temporary dir beside it, which then replaces the old dir
in one step (an atomic exchange where the kernel has one), so a kill never leaves new weights beside an old
config. Whatever else the old dir held (decodings, which name the weights they were made from) is moved
into the new dir first, so nothing of the user's is deleted.
"""

from __future__ import annotations

import ctypes
import os
import shutil
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
from cald_asr.registry import Registry

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
MODEL_KINDS: Registry[type] = Registry("model", {cls.kind: cls for cls in (ASRCTCModel, TextClassifier)})
FORMAT_VERSION = "1.0"
# Every key a model config may hold, and what it is
MODEL_KEYS = {
    "format_version": "major.minor of this file format",
    "model": "asr_ctc or text_cls",
    "frontend": "feature extractor of waveform input (frontend_conf: its options)",
    "frontend_conf": "",
    "encoder": "encoder family (encoder_conf: its architecture)",
    "encoder_conf": "",
    "mixer": "linear-time mixer replacing every attention (mixer_conf: its options)",
    "mixer_conf": "",
    "token_list": "asr_ctc: the CTC output symbols",
    "token_type": "char or bpe",
    "bpemodel": "sentencepiece model",
    "labels": "text_cls: class names",
    "pooling": "text_cls: mean or first",
    "tokenizer": "text_cls: tokenizer dir",
    "ctc_dropout": "",
    "classifier_dropout": "",
    "pretrained_from": "the checkpoint the teacher's encoder was read from",
    "cald_strategy": "the strategy a student was trained with",
    "initialised_from": "the model it started from",
    "converted_from": "the transformer `convert` converted",
    "mixers_from": "the model a student's mixers started from (asr_train --init_mixers)",
    "trained_steps": "optimiser steps behind these weights",
}


class ModelFileError(ValueError):
    """A model config or weights file that cannot be used; the message names the file."""


def check_model_config(config: Dict[str, Any], source: str) -> None:
    """Refuse a config this version cannot read faithfully: a newer major format version, or unknown keys."""
    version = config.get("format_version", FORMAT_VERSION)
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise ModelFileError(f"{source}: format_version {version!r} is not major.minor") from None
    if major > int(FORMAT_VERSION.split(".")[0]):
        raise ModelFileError(
            f"{source}: format_version {version} is newer than this cald-asr reads "
            f"({FORMAT_VERSION}); upgrade cald-asr to load it"
        )
    unknown = sorted(set(config) - set(MODEL_KEYS))
    if unknown:
        raise ModelFileError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in a model config "
            f"(format {FORMAT_VERSION} knows: {', '.join(MODEL_KEYS)})"
        )


def build_model(config: Dict[str, Any], source: str = "config") -> nn.Module:
    """A freshly initialised model with the architecture `config` describes."""
    check_model_config(config, source)
    kind = config.get("model", "asr_ctc")
    try:
        MODEL_KINDS.lookup(kind, source)
    except ValueError as e:
        raise ModelFileError(str(e)) from None
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
            model = TextClassifier(
                encoder, len(labels), config.get("pooling", "mean"), dropout=config.get("classifier_dropout", 0.1)
            )
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
        "model": model.kind,
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


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model(model: nn.Module, config: Dict[str, Any], out_dir: os.PathLike | str) -> Path:
    """Write out_dir/{config.yaml, model.safetensors} together: into a temporary dir that then replaces
    out_dir (see the module's note); the config gets this format's version."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _st_save_model(model, str(tmp / WEIGHTS_NAME))
        config = {"format_version": FORMAT_VERSION, **{k: v for k, v in config.items() if k != "format_version"}}
        (tmp / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            _fsync(tmp / name)
        if out.is_dir():
            for entry in out.iterdir():
                if entry.name not in (WEIGHTS_NAME, CONFIG_NAME):
                    os.replace(entry, tmp / entry.name)
        if not out.exists():
            os.replace(tmp, out)
        elif not _exchange(tmp, out):
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            tmp = old
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
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


def load_model(
    config_path: os.PathLike | str, weights_path: Optional[os.PathLike | str] = None
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
        raise ModelFileError(
            f"{weights}: weights do not match {config_path}: missing {sorted(missing)[:6]}, "
            f"unexpected {sorted(unexpected)[:6]}"
        )
    model.eval()
    return model, config
