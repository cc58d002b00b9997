"""Reading Hugging Face transformers checkpoint directories (config.json + safetensors or
pytorch_model.bin) into our own modules, with errors that name the file and the offending keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # transformers' "gelu" is the exact erf form
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


class Activation(nn.Module):
    """A transformers activation by its config name (no parameters)."""

    def __init__(self, name: str):
        super().__init__()
        if name not in _ACTIVATIONS:
            raise ValueError(f"activation {name!r} is not supported (supported: {', '.join(sorted(_ACTIVATIONS))})")
        self.name = name
        self.fn = _ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def read_hf_config(model_dir: Path) -> Tuple[dict, Path]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in model directory {model_dir}")
    try:
        return json.loads(path.read_text()), path
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def read_hf_state_dict(model_dir: Path) -> Tuple[Dict[str, torch.Tensor], str]:
    """All tensors of a transformers checkpoint directory (safetensors, sharded safetensors or
    pytorch_model.bin), with the file name to quote in errors."""
    model_dir = Path(model_dir)
    if (model_dir / "model.safetensors").is_file():
        files = [model_dir / "model.safetensors"]
    elif (model_dir / "model.safetensors.index.json").is_file():
        index = json.loads((model_dir / "model.safetensors.index.json").read_text())
        files = [model_dir / f for f in sorted(set(index["weight_map"].values()))]
    elif (model_dir / "pytorch_model.bin").is_file():
        files = [model_dir / "pytorch_model.bin"]
    else:
        raise FileNotFoundError(f"no model.safetensors(.index.json) or pytorch_model.bin in {model_dir}")
    out: Dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors.torch import load_file

            out.update(load_file(str(f)))
        else:
            out.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return out, str(files[0] if len(files) == 1 else model_dir)


def load_checked(module: nn.Module, sd: Dict[str, torch.Tensor], source: str, what: str) -> None:
    """Strict load with an error that names the checkpoint and the offending keys or shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match the {what}: missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{source}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
