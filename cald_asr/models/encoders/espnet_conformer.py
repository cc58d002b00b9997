"""ESPnet Conformer CTC models (espnet2 ``encoder: conformer``) as CALD teachers and students.

Built from espnet's own modules (espnet2.asr.encoder.conformer_encoder.ConformerEncoder and
espnet2.asr.ctc.CTC), read from ESPnet's experiment layout (config.yaml + model.pth).  Only the CTC
branch is used: the attention decoder's weights in model.pth are skipped, so decoding is greedy/beam CTC.

Padding.  ESPnet's batched Conformer is not padding-invariant: (1) the conv2d subsampling slices the
*batch* mask (``mask[:, :, :-2:2]``), so a padded utterance keeps one or two more frames per stage than
it has alone, and those frames' receptive fields reach into the padding; (2) the Conformer convolution
module (pointwise conv -> GLU -> depthwise conv) gets no mask, so its depthwise conv mixes padded frames
(which carry GLU(bias) and earlier layers' garbage) into the last valid ones.  With
``padding_invariant=True`` (default) EspnetConformerEncoder uses each utterance's own subsampled length
(valid subsampled frames then only read valid input frames) and zeroes padded frames at the depthwise
conv's input, so every utterance gets exactly the output it gets alone.  ``padding_invariant=False``
reproduces ConformerEncoder.forward on the padded batch.  Either way this holds in eval mode: in train
mode the conv module's BatchNorm statistics include padded frames, as in ESPnet.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import yaml
from torch import nn

from cald_asr.frontend.espnet_fbank import EspnetFbank, GlobalMVN, UtteranceMVN
from cald_asr.models.encoders.output import EncoderOutput

logger = logging.getLogger(__name__)

_FLASH_NOTICE = "Failed to import Flash Attention"


def _import_espnet():
    """espnet's attention module print()s a notice at import when flash_attn (a CUDA kernel package) is
    absent; on CPU ESPnet's own attention is the one to use, so the notice goes to the debug log and
    anything else espnet prints is passed through."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            from espnet.nets.pytorch_backend.transformer import subsampling
            from espnet2.asr.ctc import CTC
            from espnet2.asr.encoder import conformer_encoder
    except ImportError as e:
        raise ImportError(
            "ESPnet Conformer support needs espnet without its torch pin: "
            "pip install --no-deps espnet==202511 && pip install -c constraints.txt typeguard packaging"
        ) from e
    for line in buf.getvalue().splitlines():
        if line.startswith(_FLASH_NOTICE):
            logger.debug("espnet: %s (not used on this path)", line)
        elif line.strip():
            print(line)
    return conformer_encoder, CTC, subsampling


_conformer_encoder, CTC, _subsampling = _import_espnet()
ConformerEncoder = _conformer_encoder.ConformerEncoder

# Per subsampling class: the (kernel - 1, stride) of each time-axis conv, as ESPnet slices its mask.
_SUBSAMPLING_STAGES = {
    _subsampling.Conv2dSubsampling: ((2, 2), (2, 2)),
    _subsampling.Conv2dSubsampling1: ((4, 1),),
    _subsampling.Conv2dSubsampling2: ((2, 2), (2, 1)),
    _subsampling.Conv2dSubsampling6: ((2, 2), (4, 3)),
    _subsampling.Conv2dSubsampling8: ((2, 2), (2, 2), (2, 2)),
}


def subsampled_lengths(embed: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
    """Frames the subsampling gives an utterance of each length *alone*: len(range(0, L - a, s)) per
    stage, i.e. the output frames whose receptive field ends inside the utterance."""
    for a, s in _SUBSAMPLING_STAGES.get(type(embed), ()):
        lengths = torch.div(lengths - a + s - 1, s, rounding_mode="floor").clamp(min=0)
    return lengths


def _valid(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def attention_weights(attn: nn.Module) -> Dict[str, object]:
    """An ESPnet MultiHeadedAttention's projections (nn.Linear layout, detached copies) and head count,
    e.g. to initialise a Linformer.  Rel-pos attention's linear_pos / pos_bias_u / pos_bias_v and a
    qk_norm's norms have no counterpart there and are not returned."""
    out: Dict[str, object] = {}
    for short, name in (("q", "linear_q"), ("k", "linear_k"), ("v", "linear_v"), ("o", "linear_out")):
        lin = getattr(attn, name, None)
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"{type(attn).__name__} has no nn.Linear {name}: not an ESPnet attention")
        out[f"{short}_w"] = lin.weight.detach().clone()
        out[f"{short}_b"] = None if lin.bias is None else lin.bias.detach().clone()
    out["n_heads"] = int(attn.h)
    return out


class EspnetMixerAdapter(nn.Module):
    """Takes the place of an ESPnet encoder layer's self_attn.  The layer calls it as
    (x, x, x, mask) or, with relative positions, (x, x, x, pos_emb, mask); the mixer gets x and the
    lengths read off the (B, 1, T) mask.  pos_emb is dropped: the mixer orders tokens itself."""

    def __init__(self, mixer: nn.Module):
        super().__init__()
        self.mixer = mixer

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args) -> torch.Tensor:
        if not (query is key and key is value):
            raise ValueError(
                "EspnetMixerAdapter replaces self-attention over the whole sequence only "
                "(query, key and value must be the same tensor; no streaming cache)"
            )
        if len(args) not in (1, 2):
            raise TypeError(f"expected (x, x, x, [pos_emb,] mask), got {3 + len(args)} arguments")
        mask = args[-1]
        lengths = None
        if mask is not None:
            if mask.dim() != 3 or mask.size(1) != 1 or mask.size(2) != query.size(1):
                raise ValueError(f"expected a (B, 1, {query.size(1)}) key mask, got {tuple(mask.shape)}")
            valid = mask[:, 0, :].bool()
            lengths = valid.sum(-1)
            if not torch.equal(valid, _valid(lengths, valid.size(1))):
                raise ValueError("mask is not a prefix (right-padding) mask; mixers need lengths")
        return self.mixer(query, lengths)


class EspnetConformerEncoder(nn.Module):
    """Our encoder interface around an espnet2 ConformerEncoder (kept whole as ``.conformer``, so its
    parameter names stay ESPnet's): forward(feats (B, T, D), feat_lengths (B,) or None) -> EncoderOutput
    with one hidden state per ConformerEncoderLayer (the last after ``after_norm`` when the encoder has
    one) and out_lengths after subsampling; padded frames are zero in every returned tensor."""

    def __init__(self, conformer: nn.Module, padding_invariant: bool = True):
        super().__init__()
        if not isinstance(conformer, ConformerEncoder):
            raise TypeError(f"expected espnet2 ConformerEncoder, got {type(conformer).__name__}")
        if conformer.interctc_use_conditioning or conformer.ctc_trim:
            raise ValueError(
                "interctc conditioning / ctc_trim feed CTC posteriors back into the encoder; "
                "not supported (intermediate CTC without conditioning is fine)"
            )
        emb = conformer.embed
        if isinstance(emb, nn.Sequential) and isinstance(emb[0], nn.Embedding):
            raise ValueError("input_layer 'embed' (token ids) is not a speech encoder; not supported")
        self.conformer = conformer
        self.padding_invariant = padding_invariant
        self.d_model = conformer.output_size()
        self.n_layers = len(conformer.encoders)
        self._conv_valid: Optional[torch.Tensor] = None
        for layer in conformer.encoders:
            if layer.conv_module is not None:
                layer.conv_module.depthwise_conv.register_forward_pre_hook(self._mask_conv_input)

    def _mask_conv_input(self, module, args):
        valid = self._conv_valid
        if valid is None:
            return None
        if args[0].shape[0] != valid.shape[0] or args[0].shape[-1] != valid.shape[1]:
            raise RuntimeError(
                f"conv module input {tuple(args[0].shape)} does not match the frame mask {tuple(valid.shape)}"
            )
        return (args[0].masked_fill(~valid[:, None, :], 0.0),) + tuple(args[1:])

    def forward(self, feats: torch.Tensor, feat_lengths: Optional[torch.Tensor] = None) -> EncoderOutput:
        enc = self.conformer
        if feats.dim() != 3:
            raise ValueError(f"expected feats (B, T, D), got shape {tuple(feats.shape)}")
        B, T, _ = feats.shape
        if feat_lengths is None:
            feat_lengths = torch.full((B,), T, dtype=torch.long, device=feats.device)
        feat_lengths = feat_lengths.to(feats.device, torch.long)
        if feat_lengths.shape != (B,) or int(feat_lengths.min()) < 1 or int(feat_lengths.max()) > T:
            raise ValueError(f"feat_lengths must be (B,) = ({B},) values in 1..{T}, got {feat_lengths.tolist()}")
        short, limit = _subsampling.check_short_utt(enc.embed, T)
        if short:
            raise ValueError(
                f"input of {T} frames is too short for {type(enc.embed).__name__} (it needs at least {limit})"
            )
        mask = _valid(feat_lengths, T)[:, None, :]
        if type(enc.embed) in _SUBSAMPLING_STAGES:
            x, mask = enc.embed(feats, mask)
        else:
            x = enc.embed(feats)
        T_out = (x[0] if isinstance(x, tuple) else x).size(1)
        if self.padding_invariant:
            out_lengths = subsampled_lengths(enc.embed, feat_lengths)
            if int(out_lengths.min()) < 1:
                i = int(out_lengths.argmin())
                raise ValueError(
                    f"utterance {i} of the batch ({int(feat_lengths[i])} frames) is too short "
                    f"for {type(enc.embed).__name__}"
                )
            mask = _valid(out_lengths, T_out)[:, None, :]
        else:
            out_lengths = mask[:, 0, :].sum(-1)
        valid = mask[:, 0, :]
        drop = torch.empty(self.n_layers).uniform_() if self.training else None
        hidden_states: List[torch.Tensor] = []
        self._conv_valid = valid if self.padding_invariant else None
        try:
            for i, layer in enumerate(enc.encoders):
                # ESPnet's MultiSequential layer drop, kept because the loop is ours now.
                if drop is None or drop[i] >= enc.encoders.layer_drop_rate:
                    x, mask = layer(x, mask)
                h = x[0] if isinstance(x, tuple) else x
                if i == self.n_layers - 1 and enc.normalize_before:
                    h = enc.after_norm(h)
                hidden_states.append(h.masked_fill(~valid[..., None], 0.0))
        finally:
            self._conv_valid = None
        return EncoderOutput(out=hidden_states[-1], out_lengths=out_lengths, hidden_states=hidden_states)

    def replace_token_mixers(self, factory: Callable[[int, nn.Module, int], nn.Module]) -> List[nn.Module]:
        """For every layer i, install factory(i, attention, d_model) in place of its self-attention (via
        EspnetMixerAdapter); returns (name, removed attention, mixer) per layer.  Everything else is left untouched; a
        rel-pos attention's own positional parameters (linear_pos, pos_bias_u/v) go with it, and the
        positional embedding the layers still receive is ignored by the adapter."""
        for i, layer in enumerate(self.conformer.encoders):
            if isinstance(layer.self_attn, EspnetMixerAdapter):
                raise ValueError(f"layer {i}: self-attention was already replaced by a token mixer")
        replaced = []
        for i, layer in enumerate(self.conformer.encoders):
            mixer = factory(i, layer.self_attn, self.d_model)
            if not isinstance(mixer, nn.Module):
                raise TypeError(f"layer {i}: factory returned {type(mixer).__name__}, not an nn.Module")
            replaced.append((f"conformer.encoders.{i}.self_attn", layer.self_attn, mixer))
            layer.self_attn = EspnetMixerAdapter(mixer)
        return replaced

    # conversion reads a Linformer's Q/K/V/O from ESPnet's attention through this
    attention_weights = staticmethod(attention_weights)

    @property
    def converted(self) -> bool:
        return any(isinstance(layer.self_attn, EspnetMixerAdapter) for layer in self.conformer.encoders)


class EspnetConformerCTC(nn.Module):
    """ESPnet ASR model, CTC branch: [frontend] -> [normalize] -> Conformer -> CTC linear.
    forward(x, lengths) -> (EncoderOutput, CTC logits (B, T', vocab)); x is a waveform (B, N) when the
    config has a front end, else features (B, T, input_size).  ``config`` is the ESPnet config dict."""

    def __init__(
        self,
        config: dict,
        encoder: EspnetConformerEncoder,
        ctc: nn.Module,
        frontend: Optional[nn.Module] = None,
        normalize: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.config = config
        self.token_list: List[str] = list(config["token_list"])
        self.frontend, self.normalize, self.encoder, self.ctc = frontend, normalize, encoder, ctc

    def extract_feats(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
        x = x[:, : int(lengths.max())]
        if self.frontend is not None:
            x, lengths = self.frontend(x, lengths)
        if self.normalize is not None:
            x, lengths = self.normalize(x, lengths)
        return x, lengths

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tuple[EncoderOutput, torch.Tensor]:
        feats, feat_lengths = self.extract_feats(x, lengths)
        enc = self.encoder(feats, feat_lengths)
        return enc, self.ctc.ctc_lo(enc.out)

    def espnet_state_dict(self) -> Dict[str, torch.Tensor]:
        """State dict under ESPnet's names (encoder.*, ctc.*, frontend.*, normalize.*)."""
        sd = {}
        for k, v in self.state_dict().items():
            if k.startswith("encoder.conformer."):
                k = "encoder." + k[len("encoder.conformer.") :]
            sd[k] = v
        return sd


# ---- reading and writing ESPnet's layout ---------------------------------------------------------

_SKIPPED_PREFIXES = ("decoder.", "criterion_att.", "joint_network.")


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"ESPnet config not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: expected a YAML mapping of ESPnet options, got {type(conf).__name__}")
    return conf


def _token_list(conf: dict, path: Path) -> List[str]:
    tl = conf.get("token_list")
    if isinstance(tl, str):
        p = Path(tl) if Path(tl).is_file() else path.parent / tl
        if not p.is_file():
            raise FileNotFoundError(f"{path}: token_list file {tl!r} not found")
        tl = [line.rstrip("\n") for line in open(p, encoding="utf-8")]
    if not isinstance(tl, list) or not tl:
        raise ValueError(f"{path}: token_list must be a non-empty list of tokens or a file of them")
    return [str(t) for t in tl]


def _build_speech_encoder(conf: dict, where: str, padding_invariant: bool):
    """(frontend, normalize, EspnetConformerEncoder) from the ESPnet config keys that describe them."""
    enc_type = conf.get("encoder")
    if enc_type != "conformer":
        raise ValueError(f"{where}: encoder {enc_type!r} is not supported (only 'conformer')")
    for key in ("preencoder", "postencoder"):
        if conf.get(key) is not None:
            raise ValueError(f"{where}: {key} {conf[key]!r} is not supported")
    frontend = None
    if conf.get("input_size") is None:
        name = conf.get("frontend", "default")
        if name != "default":
            raise ValueError(f"{where}: frontend {name!r} is not supported (only 'default' or input_size)")
        try:
            frontend = EspnetFbank(**(conf.get("frontend_conf") or {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: frontend_conf: {e}") from e
        input_size = frontend.output_size()
    else:
        input_size = int(conf["input_size"])

    normalize = None
    norm, norm_conf = conf.get("normalize"), dict(conf.get("normalize_conf") or {})
    try:
        if norm == "global_mvn":
            # mean/std come from model.pth (as when ESPnet loads it); the stats file need not exist here
            norm_conf.pop("stats_file", None)
            norm_conf.pop("eps", None)
            normalize = GlobalMVN(input_size, **norm_conf)
        elif norm == "utterance_mvn":
            normalize = UtteranceMVN(**norm_conf)
        elif norm is not None:
            raise ValueError(f"normalize {norm!r} is not supported (global_mvn, utterance_mvn or null)")
    except TypeError as e:
        raise ValueError(f"{where}: normalize_conf: {e}") from e
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e

    try:
        conformer = ConformerEncoder(input_size=input_size, **(conf.get("encoder_conf") or {}))
        encoder = EspnetConformerEncoder(conformer, padding_invariant)
    except Exception as e:
        raise ValueError(f"{where}: cannot build the Conformer from encoder_conf: {e}") from e
    return frontend, normalize, encoder


def _build(conf: dict, path: Path, padding_invariant: bool) -> EspnetConformerCTC:
    where = str(path)
    if conf.get("model", "espnet") not in (None, "espnet"):
        raise ValueError(f"{where}: model {conf['model']!r} is not supported (only 'espnet')")
    if float((conf.get("model_conf") or {}).get("ctc_weight", 0.5)) == 0.0:
        raise ValueError(f"{where}: model_conf.ctc_weight is 0, so the model has no CTC head to use")
    conf = copy.deepcopy(conf)
    conf["token_list"] = _token_list(conf, path)
    frontend, normalize, encoder = _build_speech_encoder(conf, where, padding_invariant)
    try:
        ctc = CTC(odim=len(conf["token_list"]), encoder_output_size=encoder.d_model, **(conf.get("ctc_conf") or {}))
    except Exception as e:
        raise ValueError(f"{where}: cannot build the CTC layer from ctc_conf: {e}") from e
    return EspnetConformerCTC(conf, encoder, ctc, frontend, normalize)


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"ESPnet model file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot read a PyTorch state dict (truncated or not a .pth?): {e}") from e
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(sd).__name__}")
    return sd


def _fmt(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")


def load_espnet_asr(
    config_yaml: Union[str, Path], model_pth: Union[str, Path], padding_invariant: bool = True
) -> EspnetConformerCTC:
    """Read an ESPnet ASR experiment (config.yaml, model.pth) into an EspnetConformerCTC in eval mode.
    Loads encoder.*, ctc.*, frontend.* and normalize.* strictly; skips the attention decoder's tensors.
    specaug (training-time augmentation, no parameters) is not built: the trainer applies its own."""
    config_yaml, model_pth = Path(config_yaml), Path(model_pth)
    model = _build(_read_config(config_yaml), config_yaml, padding_invariant)
    sd = _read_state_dict(model_pth)
    ours = model.espnet_state_dict()
    wanted = {k: v for k, v in sd.items() if not k.startswith(_SKIPPED_PREFIXES)}
    missing, unexpected = set(ours) - set(wanted), set(wanted) - set(ours)
    if missing or unexpected:
        parts = [f"missing {_fmt(missing)}"] if missing else []
        parts += [f"unexpected {_fmt(unexpected)}"] if unexpected else []
        raise ValueError(f"{model_pth} does not match {config_yaml}: " + "; ".join(parts))
    for k, v in wanted.items():
        if ours[k].shape != v.shape:
            raise ValueError(f"{model_pth}: {k} has shape {tuple(v.shape)}, {config_yaml} gives {tuple(ours[k].shape)}")
    renamed = {
        ("encoder.conformer." + k[len("encoder.") :] if k.startswith("encoder.") else k): v for k, v in wanted.items()
    }
    model.load_state_dict(renamed, strict=True)
    skipped = len(sd) - len(wanted)
    if skipped:
        logger.info("%s: skipped %d decoder tensors (CTC only)", model_pth, skipped)
    return model.eval()


def save_espnet_asr(
    model: EspnetConformerCTC, out_dir: Union[str, Path], model_name: str = "model.pth"
) -> Tuple[Path, Path]:
    """Write config.yaml and model_name under out_dir in ESPnet's layout; returns both paths."""
    if model.encoder.converted:
        raise ValueError(
            "this model's attention was replaced by token mixers; ESPnet's layout cannot "
            "hold it (save the student with the CALD checkpoint code instead)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, model_path = out_dir / "config.yaml", out_dir / model_name
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(model.config, f, sort_keys=False, allow_unicode=True)
    torch.save(model.espnet_state_dict(), model_path)
    return config_path, model_path


def conformer_ctc_from_scratch(
    input_size: int = 13,
    vocab_size: Optional[int] = None,
    token_list: Optional[List[str]] = None,
    normalize: Optional[str] = "utterance_mvn",
    normalize_conf: Optional[dict] = None,
    padding_invariant: bool = True,
    **encoder_conf,
) -> EspnetConformerCTC:
    """A freshly initialised Conformer CTC model on feature input, described by an ESPnet config so that
    save_espnet_asr + load_espnet_asr round-trip it.  Give token_list (ESPnet's, "<blank>" first) or
    vocab_size (placeholder tokens).  encoder_conf: ConformerEncoder's keyword arguments, ESPnet's defaults
    for those not given (a recipe's are in its conf/, e.g. egs/an4/asr1/conf/teacher_conformer.yaml).  normalize is
    ESPnet's default utterance_mvn (per-utterance mean removal, i.e. CMN for MFCC); "global_mvn" needs
    normalize_conf={"stats_file": ...}."""
    if token_list is None:
        if vocab_size is None or vocab_size < 2:
            raise ValueError("give token_list or vocab_size >= 2")
        token_list = ["<blank>"] + [f"<tok{i}>" for i in range(1, vocab_size - 1)] + ["<sos/eos>"]
    elif vocab_size is not None and vocab_size != len(token_list):
        raise ValueError(f"vocab_size {vocab_size} != len(token_list) {len(token_list)}")
    enc_conf = dict(encoder_conf)
    config = {
        "input_size": int(input_size),
        "frontend": None,
        "frontend_conf": {},
        "specaug": None,
        "specaug_conf": {},
        "normalize": normalize,
        "normalize_conf": dict(normalize_conf or {}),
        "preencoder": None,
        "encoder": "conformer",
        "encoder_conf": enc_conf,
        "postencoder": None,
        "decoder": None,
        "model": "espnet",
        "model_conf": {"ctc_weight": 1.0},
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "zero_infinity": True},
        "token_list": list(token_list),
    }
    model = _build(config, Path("<conformer_ctc_from_scratch>"), padding_invariant)
    if normalize == "global_mvn":
        stats = GlobalMVN.from_stats_file(config["normalize_conf"]["stats_file"])
        model.normalize.mean.copy_(stats.mean)
        model.normalize.std.copy_(stats.std)
    return model


# ---- as one of our encoders (cald_asr.models.registry: encoder "espnet_conformer") -----------------

# The ESPnet config keys that describe the speech encoder (front end, normalisation, Conformer); they are
# the encoder_conf of our model format, so a converted student rebuilds from its own config.
SPEECH_ENCODER_KEYS = (
    "input_size",
    "frontend",
    "frontend_conf",
    "normalize",
    "normalize_conf",
    "encoder",
    "encoder_conf",
    "preencoder",
    "postencoder",
)


class EspnetSpeechEncoder(nn.Module):
    """[front end] -> [normalisation] -> Conformer, with our encoder interface: forward(x, lengths) ->
    EncoderOutput, x a waveform (B, N) when the config has a front end, else features (B, T, input_size)."""

    def __init__(
        self, conf: dict, frontend: Optional[nn.Module], normalize: Optional[nn.Module], encoder: EspnetConformerEncoder
    ):
        super().__init__()
        self.conf = {k: copy.deepcopy(conf[k]) for k in SPEECH_ENCODER_KEYS if k in conf}
        self.frontend, self.normalize, self.encoder = frontend, normalize, encoder
        self.d_model = encoder.d_model

    @classmethod
    def from_conf(cls, conf: dict, padding_invariant: bool = True) -> "EspnetSpeechEncoder":
        conf = {"encoder": "conformer", **conf}
        unknown = sorted(set(conf) - set(SPEECH_ENCODER_KEYS))
        if unknown:
            raise TypeError(f"unknown espnet_conformer keys {unknown}")
        return cls(conf, *_build_speech_encoder(conf, "encoder_conf", padding_invariant))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if self.frontend is not None:
            lengths = self.frontend.output_lengths(lengths)
        return subsampled_lengths(self.encoder.conformer.embed, lengths)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> EncoderOutput:
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
        x = x[:, : int(lengths.max())]
        if self.frontend is not None:
            x, lengths = self.frontend(x, lengths)
        if self.normalize is not None:
            x, lengths = self.normalize(x, lengths)
        return self.encoder(x, lengths)


def espnet_to_asr_ctc(model: EspnetConformerCTC):
    """An ESPnet Conformer CTC model (e.g. from load_espnet_asr) as our ASRCTCModel, sharing its modules."""
    from cald_asr.models.asr_ctc import ASRCTCModel

    speech = EspnetSpeechEncoder(model.config, model.frontend, model.normalize, model.encoder)
    out = ASRCTCModel(speech, len(model.token_list))
    out.ctc = model.ctc.ctc_lo
    return out


__all__ = [
    "EspnetConformerCTC",
    "EspnetConformerEncoder",
    "EspnetMixerAdapter",
    "EspnetSpeechEncoder",
    "espnet_to_asr_ctc",
    "attention_weights",
    "conformer_ctc_from_scratch",
    "load_espnet_asr",
    "save_espnet_asr",
    "subsampled_lengths",
]
