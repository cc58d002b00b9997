"""Flat YAML training configs (ESPnet style) with command-line overrides.

    python -m cald_asr.bin.asr_train --config conf/train.yaml --max_steps 500 --optim_conf.lr 3e-4

`--key value` sets a top-level key; `--a.b value` a nested one; values are parsed as YAML scalars
(3e-4 -> float, true -> bool, [1, 2] -> list). Unknown keys are errors, so a typo never goes unnoticed, and
so are values of the wrong type (`specaug: "false"` is a string, not false; `max_steps: "100"` a string, not
a count), at any depth: each option's type is declared beside its default (`Spec`, `Fixed`, `Mapping`).
YAML files are read with YAML 1.2's numbers: `lr: 3e-4` is the float users mean (YAML 1.1 reads a string).
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import yaml


class ConfigError(ValueError):
    pass


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that also reads 3e-4, 1e5 and .5e-3 as floats (YAML 1.2), not as strings (YAML 1.1)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)


# ------------------------------------------------------------------------------------- option types


@dataclass(frozen=True)
class Spec:
    """An option's allowed values: any of `types` (bool, int, float, str, list, dict), of `choices` (literal
    values), or None when `optional`. float accepts an int; int and float never accept a bool."""

    types: Tuple[type, ...] = ()
    choices: Tuple[Any, ...] = ()
    optional: bool = False

    def accepts(self, v: Any) -> bool:
        if v is None:
            return self.optional
        if self.choices and v in self.choices and not isinstance(v, bool):
            return True
        for t in self.types:
            if t is bool and isinstance(v, bool):
                return True
            if t is int and isinstance(v, int) and not isinstance(v, bool):
                return True
            if t is float and isinstance(v, (int, float)) and not isinstance(v, bool):
                return True
            if t not in (bool, int, float) and isinstance(v, t):
                return True
        return False

    def describe(self) -> str:
        names = {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "a string",
            list: "a list",
            dict: "a mapping",
        }
        parts = [names.get(t, t.__name__) for t in self.types] + [repr(c) for c in self.choices]
        if self.optional:
            parts.append("null")
        return " or ".join(parts)


@dataclass(frozen=True)
class Fixed:
    """A mapping whose keys are fixed (optim_conf, scheduler_conf): each key has its Spec."""

    keys: Dict[str, "OptionSpec"]


@dataclass(frozen=True)
class Mapping:
    """A mapping with free keys whose values all have one Spec (lr_scale: pattern -> factor)."""

    value: Spec


OptionSpec = Union[Spec, Fixed, Mapping]


def spec_of(default: Any) -> OptionSpec:
    """The Spec a default value implies (None: any value; declare such options explicitly)."""
    if isinstance(default, bool):
        return Spec((bool,))
    if isinstance(default, int):
        return Spec((int,))
    if isinstance(default, float):
        return Spec((float,))
    if isinstance(default, str):
        return Spec((str,))
    if isinstance(default, list):
        return Spec((list,))
    if isinstance(default, dict):
        return Spec((dict,))
    return Spec((object,), optional=True)


def keyword_specs(fn: Callable, skip: Sequence[str] = ()) -> Fixed:
    """The keyword arguments of a constructor as a Fixed mapping, each typed by its default (mixer_conf is the
    keyword arguments of the mixer, specaug_conf those of SpecAugment)."""
    keys = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        spec = spec_of(p.default) if p.default is not inspect.Parameter.empty else Spec((object,), optional=True)
        if isinstance(spec, Spec) and spec.types == (float,):
            spec = Spec((float,))
        keys[name] = spec
    return Fixed(keys)


def _value_text(v: Any) -> str:
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return f"{type(v).__name__} {v!r}"


def check_option(path: str, value: Any, spec: OptionSpec, source: str) -> None:
    """Raise ConfigError("<source>: <path>: ...") if `value` does not fit `spec`, at any depth."""
    if isinstance(spec, Spec):
        if not spec.accepts(value):
            raise ConfigError(f"{source}: {path}: expected {spec.describe()}, got {_value_text(value)}")
        return
    if value is None:
        return
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {path}: expected a mapping, got {_value_text(value)}")
    for k, v in value.items():
        if isinstance(spec, Fixed):
            if k not in spec.keys:
                raise ConfigError(f"{source}: {path}: unknown key {k!r} (known: {', '.join(sorted(spec.keys))})")
            check_option(f"{path}.{k}", v, spec.keys[k], source)
        else:
            check_option(f"{path}.{k}", v, spec.value, source)


def check_options(config: Dict[str, Any], specs: Dict[str, OptionSpec], source: str) -> None:
    for k, v in config.items():
        if k in specs:
            check_option(k, v, specs[k], source)


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def load_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config not found")
    try:
        data = yaml_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options")
    return data


def _override_paths(flag: str, value: str, defaults: Dict[str, Any]) -> List[Tuple[List[str], Any]]:
    """The (key path, value) pairs one `--flag value` sets: `--a.b v`; for a mapping option also ESPnet's
    forms `--a b=v` (`--a b.c=v` deeper) and `--a "{b: v, c: w}"` (those keys, the others kept)."""
    path = flag[2:].replace("-", "_").split(".")
    if len(path) == 1 and isinstance(defaults.get(path[0]), dict):
        text = value.strip()
        if text.startswith("{"):
            mapping = _yaml_scalar(text)
            if isinstance(mapping, dict):
                return [(path + [str(k)], v) for k, v in mapping.items()]
        elif "=" in text:
            key, _, v = text.partition("=")
            return [(path + key.strip().replace("-", "_").split("."), _yaml_scalar(v))]
    return [(path, _yaml_scalar(value))]


def apply_overrides(
    config: Dict[str, Any],
    overrides: Sequence[str],
    defaults: Dict[str, Any],
    specs: Optional[Dict[str, OptionSpec]] = None,
) -> Dict[str, Any]:
    """Apply ['--key', 'value', '--a.b', 'value', '--a', 'b=value', ...] to a copy of config; keys must exist
    in defaults, and values fit `specs` where given."""
    out = copy.deepcopy(config)
    items: List[str] = list(overrides)
    if len(items) % 2:
        raise ConfigError(f"option {items[-1]} needs a value")
    for flag, value in zip(items[::2], items[1::2]):
        if not flag.startswith("--"):
            raise ConfigError(f"expected --key value, got {flag!r}")
        for path, parsed in _override_paths(flag, value, defaults):
            shown = "--" + ".".join(path)
            if path[0] not in defaults:
                raise ConfigError(f"unknown option {flag} (known: {', '.join(sorted(defaults))})")
            known = defaults[path[0]]
            if len(path) == 2 and isinstance(known, dict) and known and path[1] not in known:
                # a mapping whose keys are fixed (optim_conf, scheduler_conf): a misspelt key is an error
                raise ConfigError(f"unknown option {shown} ({path[0]} keys: {', '.join(sorted(known))})")
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{shown}: {key} is not a mapping")
            node[path[-1]] = parsed
            if specs is not None and path[0] in specs:
                check_option(path[0], out[path[0]], specs[path[0]], f"command line {flag}")
    return out


def merge_with_defaults(
    config: Dict[str, Any], defaults: Dict[str, Any], source: str, specs: Optional[Dict[str, OptionSpec]] = None
) -> Dict[str, Any]:
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {unknown}")
    if specs is not None:
        check_options(config, specs, source)
    merged = copy.deepcopy(defaults)
    for k, v in config.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    return merged
