"""Conversion: replace every self-attention of a model with a registered linear-time mixer.

Every other parameter (front end, convolutions, feed-forward blocks, norms, heads) is left as it is, bit
for bit. Encoders expose their token mixers as `.self_attn` modules with forward(x, lengths); encoders
built from another toolkit's modules (ESPnet) provide `replace_token_mixers(factory)` and
`attention_weights(attn)` instead.

New mixers are freshly initialised (Mamba/Mamba2), except Linformer, which takes the query, key, value
and output projections of the attention it replaces; only its sequence projections E, F are new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import nn

from cald_asr.mixers import MIXERS, LinformerProjection, build_mixer
from cald_asr.models.attention import MultiHeadSelfAttention

SLOT = "self_attn"
# factory(layer_index, attention_module, d_model) -> mixer
MixerFactory = Callable[[int, nn.Module, int], nn.Module]
WeightsReader = Callable[[nn.Module], Dict[str, Any]]


def count_params(module: nn.Module) -> int:
    # shared parameters (Linformer's layer-wise E) count once, as in the state dict on disk
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def attention_weights(attn: nn.Module) -> Dict[str, Any]:
    """The projections of one of our MultiHeadSelfAttention modules, in nn.Linear layout."""
    if not isinstance(attn, MultiHeadSelfAttention):
        raise TypeError(f"cannot read projections from {type(attn).__name__}")
    get = lambda lin: (lin.weight.detach(), None if lin.bias is None else lin.bias.detach())  # noqa: E731
    (q_w, q_b), (k_w, k_b), (v_w, v_b), (o_w, o_b) = map(get, (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj))
    return dict(q_w=q_w, q_b=q_b, k_w=k_w, k_b=k_b, v_w=v_w, v_b=v_b, o_w=o_w, o_b=o_b, n_heads=attn.n_heads)


@dataclass
class ConversionReport:
    mixer: str
    replaced: List[Tuple[str, str, int, int]] = field(default_factory=list)  # name, old type, old/new params
    params_before: int = 0
    params_after: int = 0

    def __str__(self) -> str:
        lines = [f"converted {len(self.replaced)} token mixer(s) to {self.mixer}:"]
        for name, old, n_old, n_new in self.replaced:
            lines.append(f"  {name:<40s} {old} {n_old:,} -> {self.mixer} {n_new:,} parameters")
        before = sum(r[2] for r in self.replaced)
        after = sum(r[3] for r in self.replaced)
        lines.append(f"token mixers: {before:,} -> {after:,} parameters")
        lines.append(
            f"whole model:  {self.params_before:,} -> {self.params_after:,} parameters "
            f"({self.params_before - before:,} kept unchanged)"
        )
        return "\n".join(lines)


def _factory(mixer: str, conf: Dict[str, Any], model: nn.Module) -> Callable[[WeightsReader], MixerFactory]:
    """-> make(read_weights) -> factory: read_weights gets Q/K/V/O from the attention being replaced."""
    conf = dict(conf or {})
    if mixer != "linformer":
        return lambda read_weights: lambda i, attn, d_model: build_mixer(mixer, d_model, **conf)

    if "max_len" not in conf:
        # text encoders know their longest input; speech has none, so the user must say
        max_len = getattr(getattr(model, "encoder", model), "max_length", None)
        if max_len is None:
            raise ValueError("linformer needs mixer_conf.max_len (the longest encoder sequence it will see)")
        conf["max_len"] = int(max_len)
    shared = None
    if conf.get("sharing") == "layerwise":
        shared = LinformerProjection(conf["max_len"], conf.get("k", 256))

    def make(read_weights: WeightsReader) -> MixerFactory:
        def factory(i: int, attn: nn.Module, d_model: int) -> nn.Module:
            w = dict(read_weights(attn))
            n_heads = w.pop("n_heads")
            return MIXERS["linformer"].from_attention_weights(num_heads=n_heads, shared_proj=shared, **w, **conf)

        return factory

    return make


def attention_slots(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(qualified name, parent) of every `.self_attn` MultiHeadSelfAttention, in model order."""
    return [
        (f"{name}.{SLOT}" if name else SLOT, module)
        for name, module in model.named_modules()
        if isinstance(getattr(module, "_modules", {}).get(SLOT), MultiHeadSelfAttention)
    ]


def convert_model(model: nn.Module, mixer: str, mixer_conf: Optional[Dict[str, Any]] = None) -> ConversionReport:
    """Replace every attention of `model` in place with `mixer` (a name in cald_asr.mixers.MIXERS)."""
    MIXERS.lookup(mixer)
    report = ConversionReport(mixer, params_before=count_params(model))
    make = _factory(mixer, mixer_conf, model)

    delegated = [(n, m) for n, m in model.named_modules() if callable(getattr(m, "replace_token_mixers", None))]
    for name, module in delegated:
        for layer_name, old, new in module.replace_token_mixers(make(module.attention_weights)):
            report.replaced.append(
                (
                    f"{name}.{layer_name}" if name else layer_name,
                    type(old).__name__,
                    count_params(old),
                    count_params(new),
                )
            )
    factory = make(attention_weights)
    for i, (name, parent) in enumerate(attention_slots(model)):
        old = parent._modules[SLOT]
        new = factory(i, old, old.d_model)
        parent._modules[SLOT] = new
        report.replaced.append((name, type(old).__name__, count_params(old), count_params(new)))
    if not report.replaced:
        raise ValueError(f"{type(model).__name__} has no self-attention to convert")
    report.params_after = count_params(model)
    return report
