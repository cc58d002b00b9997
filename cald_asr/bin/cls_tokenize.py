"""Stage 2 of the text recipes: tokenise a text data set with the teacher's own tokenizer.

    python -m cald_asr.bin.cls_tokenize --in_dir data/train --out_dir dump/train \
        --teacher_config conf/teacher_minilm.yaml [--max_length 512] [--force]

Reads <in_dir>/{text,label} and writes <out_dir>/{text,label} (copies), token_ids (`<utt-id> <id> ...`,
the tokenizer's ids with its special tokens, [CLS] ... [SEP] for BERT), utt2num_tokens, description (if
the set has one) and tokenize.log (how many sentences were truncated). The tokenizer is the one the
teacher config names (`tokenizer:`, else its `pretrained:` bert_hf path; `default` = all-MiniLM-L6-v2),
or --tokenizer DIR; --max_length defaults to the pretrained model's positions (512 for BERT), so long
documents are cut to exactly what the model can read. A finished run leaves <out_dir>/.done and is
skipped when its inputs and options are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, iter_kv_lines, read_kv, write_kv
from cald_asr.data.text_dataset import DESCRIPTION, LABEL, NUM_TOKENS, TEXT, TOKEN_IDS, encode
from cald_asr.models.model_file import ModelFileError, read_config
from cald_asr.text.hf_tokenizer import load_text_tokenizer, resolve_tokenizer_dir

PROG = "cls_tokenize"


def tokenizer_from_teacher_config(path: str) -> str:
    config = read_config(path)
    if config.get("tokenizer"):
        return str(config["tokenizer"])
    pretrained = config.get("pretrained") or {}
    if pretrained.get("format") == "bert_hf":
        return str(pretrained.get("path") or "default")
    raise ModelFileError(f"{path}: names no tokenizer (tokenizer: DIR, or pretrained: {{format: bert_hf, path: ...}})")


def model_positions(tokenizer_dir: Path) -> int:
    """Tokens the pretrained encoder can read: its position table less RoBERTa's offset."""
    from cald_asr.models.encoders.bert import BertConfig
    from cald_asr.models.hf_checkpoint import read_hf_config

    raw, path = read_hf_config(tokenizer_dir)
    cfg = BertConfig.from_hf(raw, str(path))
    return cfg.max_position_embeddings - cfg.position_offset


def check_labels(in_dir: Path, text: dict) -> dict:
    path = in_dir / LABEL
    if not path.is_file():
        raise DataDirError(f"{path}: missing (every text set needs '<utt-id> <class name>' lines)")
    label = {}
    for line_no, utt, value in iter_kv_lines(path):
        if utt not in text:
            raise DataDirError(f"{path}:{line_no}: utterance '{utt}' is not in {in_dir / TEXT}")
        if len(value.split()) != 1:
            raise DataDirError(f"{path}:{line_no}: label '{value}' is not a single word")
        label[utt] = value
    missing = [u for u in text if u not in label]
    if missing:
        raise DataDirError(f"{path}: no label for utterance '{missing[0]}' ({len(missing)} missing)")
    return label


def tokenize_dir(in_dir: Path, out_dir: Path, tokenizer_path: str, max_length: Optional[int], force: bool) -> str:
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    tok_dir = resolve_tokenizer_dir(tokenizer_path)
    max_length = int(max_length or model_positions(tok_dir))
    key = hashlib.sha1(
        json.dumps([str(tok_dir), max_length]).encode()
        + b"".join((in_dir / f).read_bytes() for f in (TEXT, LABEL) if (in_dir / f).is_file())
    ).hexdigest()
    stamp = out_dir / ".done"
    if not force and stamp.is_file() and stamp.read_text().strip() == key:
        return f"{out_dir} is up to date, skipping (--force to redo)"
    text = read_kv(in_dir / TEXT)
    label = check_labels(in_dir, text)
    tokenizer = load_text_tokenizer(str(tok_dir))
    utts = sorted(text, key=c_sort_key)
    sentences = [text[u] for u in utts]
    full = [len(x) for x in encode(tokenizer, sentences, 10**9)]  # lengths before truncation, for the log
    ids = encode(tokenizer, sentences, max_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    write_kv(out_dir / TEXT, text)
    write_kv(out_dir / LABEL, label)
    write_kv(out_dir / TOKEN_IDS, {u: " ".join(map(str, x)) for u, x in zip(utts, ids)})
    write_kv(out_dir / NUM_TOKENS, {u: len(x) for u, x in zip(utts, ids)})
    if (in_dir / DESCRIPTION).is_file():
        shutil.copyfile(in_dir / DESCRIPTION, out_dir / DESCRIPTION)
    cut = sum(n > max_length for n in full)
    lengths = [len(x) for x in ids]
    summary = (
        f"{out_dir}: {len(utts)} sentences, tokens per sentence mean {sum(lengths) / len(lengths):.1f} "
        f"max {max(lengths)}; {cut} truncated to {max_length} (before: max {max(full)}); "
        f"tokenizer {tok_dir}"
    )
    (out_dir / "tokenize.log").write_text(summary + "\n", encoding="utf-8")
    stamp.write_text(key + "\n")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--in_dir", required=True, help="data/<set> with text and label")
    p.add_argument("--out_dir", required=True, help="dump/<set>")
    p.add_argument("--teacher_config", default=None, help="teacher YAML whose tokenizer is used")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (or 'default'); overrides the config")
    p.add_argument("--max_length", type=int, default=0, help="tokens kept per sentence (0: the model's positions)")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    try:
        if not args.tokenizer and not args.teacher_config:
            raise ValueError("give --teacher_config (or --tokenizer)")
        tok = args.tokenizer or tokenizer_from_teacher_config(args.teacher_config)
        print(f"{PROG}: {tokenize_dir(Path(args.in_dir), Path(args.out_dir), tok, args.max_length, args.force)}")
    except (DataDirError, ModelFileError, ValueError, FileNotFoundError, ModuleNotFoundError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
