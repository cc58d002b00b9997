"""Flat YAML training configs (ESPnet style) with command-line overrides.

    python -m cald_asr.bin.asr_train --config conf/train.yaml --max_steps 500 --optim_conf.lr 3e-4

`--key value` sets a top-level key; `--a.b value` a nested one; values are parsed as YAML scalars
(3e-4 -> float, true -> bool, [1, 2] -> list). Unknown keys are errors, so a typo never goes unnoticed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Sequence

import yaml


class ConfigError(ValueError):
    pass


def _yaml_scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        # YAML 1.1 reads "3e-4" as a string; it is the spelling users type for a learning rate.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options")
    return data


def apply_overrides(config: Dict[str, Any], overrides: Sequence[str], defaults: Dict[str, Any]) -> Dict[str, Any]:
    """Apply ['--key', 'value', '--a.b', 'value', ...] to a copy of config; keys must exist in defaults."""
    out = copy.deepcopy(config)
    items: List[str] = list(overrides)
    if len(items) % 2:
        raise ConfigError(f"option {items[-1]} needs a value")
    for flag, value in zip(items[::2], items[1::2]):
        if not flag.startswith("--"):
            raise ConfigError(f"expected --key value, got {flag!r}")
        path = flag[2:].replace("-", "_").split(".")
        if path[0] not in defaults:
            raise ConfigError(f"unknown option {flag} (known: {', '.join(sorted(defaults))})")
        known = defaults[path[0]]
        if len(path) == 2 and isinstance(known, dict) and known and path[1] not in known:
            # a mapping whose keys are fixed (optim_conf, scheduler_conf): a misspelt key is an error
            raise ConfigError(f"unknown option {flag} ({path[0]} keys: {', '.join(sorted(known))})")
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag}: {key} is not a mapping")
        node[path[-1]] = _yaml_scalar(value)
    return out


def merge_with_defaults(config: Dict[str, Any], defaults: Dict[str, Any], source: str) -> Dict[str, Any]:
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {unknown}")
    merged = copy.deepcopy(defaults)
    for k, v in config.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged
