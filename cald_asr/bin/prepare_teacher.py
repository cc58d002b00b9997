"""Stage 4: build the transformer teacher a recipe starts from and save it in our model format.

    python -m cald_asr.bin.prepare_teacher --config conf/teacher.yaml \
        --token_list data/token_list/char/tokens.txt --output_dir exp/teacher_pretrained

Text classification (model: text_cls) takes the class names instead of a token list:
    python -m cald_asr.bin.prepare_teacher --config conf/teacher_minilm.yaml \
        --label_list data/label_list/labels.txt --output_dir exp/cls_teacher_minilm/init

The config names the model (flat YAML, see cald_asr.models.registry): either a pretrained encoder,
    pretrained: {format: whisper_ct2, path: default}
whose architecture and weights come from the checkpoint, or `encoder_conf` for a model trained from
scratch. The task head (CTC over the recipe's token list, or a classifier over `labels`) is new and
seeded. A text model records its tokenizer (`tokenizer:`, by default the pretrained checkpoint's
directory), which stage 2 and cls_inference use. The output directory is skipped when it already holds a
model built from the same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from cald_asr.convert import count_params
from cald_asr.models.model_file import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ModelFileError,
    build_model,
    model_config,
    read_config,
    save_model,
)
from cald_asr.models.registry import ENCODERS, load_pretrained_encoder, name_of
from cald_asr.text import TokenList

STAMP = ".prepare_teacher.done"


def prepare_teacher(
    config: Dict[str, Any],
    output_dir: Path,
    token_list: Optional[Sequence[str]] = None,
    labels: Optional[Sequence[str]] = None,
    seed: int = 0,
    source: str = "config",
    extra: Optional[Dict[str, Any]] = None,
):
    """Build (and save) the teacher; returns (model, saved config)."""
    config = dict(config)
    pretrained = config.pop("pretrained", None)
    fields: Dict[str, Any] = dict(extra or {})
    if token_list is not None:
        fields["token_list"] = list(token_list)
    if labels is not None:
        fields["labels"] = list(labels)
    if pretrained is not None:
        if not isinstance(pretrained, dict) or "format" not in pretrained:
            raise ModelFileError(f"{source}: pretrained must be a mapping with 'format' (and 'path')")
        encoder = load_pretrained_encoder(pretrained["format"], pretrained.get("path"), source)
        name = name_of(ENCODERS, encoder)
        if config.get("encoder", name) != name:
            raise ModelFileError(
                f"{source}: encoder {config['encoder']!r} but pretrained format {pretrained['format']!r} gives {name!r}"
            )
        config["encoder"] = name
        config["encoder_conf"] = {**ENCODERS[name].conf_of(encoder), **(config.get("encoder_conf") or {})}
        config["pretrained_from"] = {"format": pretrained["format"], "path": str(pretrained.get("path", "default"))}
        if config.get("model") == "text_cls" and not config.get("tokenizer") and pretrained["format"] == "bert_hf":
            config["tokenizer"] = str(pretrained.get("path") or "default")  # the checkpoint's own tokenizer
    torch.manual_seed(seed)
    model = build_model({**config, **fields}, source)
    if pretrained is not None:
        # encoder_conf may only override what the weights do not fix (dropouts): load strictly
        model.encoder.load_state_dict(encoder.state_dict(), strict=True)
    saved = model_config(model, **{k: v for k, v in config.items() if k not in ("encoder", "encoder_conf")}, **fields)
    save_model(model, saved, output_dir)
    return model, saved


def read_label_list(path) -> list:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label list not found")
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, name in enumerate(labels, 1):
        if len(name.split()) != 1 or name in labels[: i - 1]:
            raise ValueError(f"{path}:{i}: label {name!r} is not a single word or appears twice")
    if len(labels) < 2:
        raise ValueError(f"{path}: a classifier needs at least 2 labels, found {len(labels)}")
    return labels


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", "--teacher_config", required=True, help="teacher model YAML")
    p.add_argument("--token_list", help="tokens.txt (ASR); the CTC head covers it")
    p.add_argument("--token_type", default=None, help="char or bpe, recorded for decoding")
    p.add_argument("--bpemodel", default=None, help="sentencepiece model, recorded for decoding")
    p.add_argument("--labels", default=None, help="comma-separated class labels (text classification)")
    p.add_argument("--label_list", default=None, help="file of class labels, one per line (text classification)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)

    out = Path(args.output_dir)
    inputs = [Path(args.config)] + [Path(f) for f in (args.token_list, args.label_list) if f]
    key = hashlib.sha1(
        json.dumps([vars(args)[k] for k in sorted(vars(args)) if k != "force"]).encode()
        + b"".join(f.read_bytes() for f in inputs if f.is_file())
    ).hexdigest()
    stamp = out / STAMP
    if not args.force and stamp.is_file() and stamp.read_text().strip() == key and (out / WEIGHTS_NAME).is_file():
        print(f"prepare_teacher: {out} is up to date, skipping (--force to rebuild)")
        return 0
    try:
        config = read_config(args.config)
        token_list = TokenList.load(args.token_list).tokens if args.token_list else None
        labels = args.labels.split(",") if args.labels else None
        if args.label_list:
            if labels:
                raise ValueError("give --labels or --label_list, not both")
            labels = read_label_list(args.label_list)
        extra = {k: v for k, v in (("token_type", args.token_type), ("bpemodel", args.bpemodel)) if v}
        model, saved = prepare_teacher(config, out, token_list, labels, args.seed, args.config, extra)
    except (ModelFileError, ValueError, FileNotFoundError) as e:
        print(f"prepare_teacher: error: {e}", file=sys.stderr)
        return 1
    stamp.write_text(key + "\n")
    src = saved.get("pretrained_from", {}).get("format", "random initialisation")
    print(
        f"prepare_teacher: {out}/{{{CONFIG_NAME},{WEIGHTS_NAME}}}: {saved['encoder']} encoder from {src}, "
        f"{count_params(model):,} parameters"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
