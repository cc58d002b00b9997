"""Activation checkpointing (`grad_checkpoint: true`): each encoder layer keeps only its input for backward
and recomputes its activations there (torch.utils.checkpoint, non-reentrant), trading about one more forward
pass for the memory of every layer's intermediates: what lets a 24-layer teacher or student train on long
utterances. The layer's own forward is wrapped in place, so parameter names, state dicts and saved models
are unchanged; dropout draws the same masks in the recomputation (the RNG state is replayed).

The encoder layers are the children of the model's layer lists: every nn.ModuleList named `layers`
(Whisper, Wav2Vec2, BERT) or `encoders` (ESPnet's Conformer); a model with none is refused."""

from __future__ import annotations

from typing import List

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

LAYER_LIST_NAMES = ("layers", "encoders")


def encoder_layers(model: nn.Module) -> List[nn.Module]:
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in LAYER_LIST_NAMES:
            found.extend(module)
    return found


def enable_grad_checkpoint(model: nn.Module) -> int:
    """Wrap every encoder layer's forward; returns how many. Layers wrapped before are left as they are."""
    layers = encoder_layers(model)
    if not layers:
        raise ValueError(f"grad_checkpoint: {type(model).__name__} has no encoder layer list ({LAYER_LIST_NAMES})")
    for layer in layers:
        if getattr(layer, "_grad_checkpoint", False):
            continue
        forward = layer.forward

        def checkpointed(*args, _forward=forward, _layer=layer, **kwargs):
            if torch.is_grad_enabled() and _layer.training and any(p.requires_grad for p in _layer.parameters()):
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        layer.forward = checkpointed
        layer._grad_checkpoint = True
    return len(layers)
