"""Classify sentences with a text model (teacher or CALD student): sentences in, labels and scores out.

    python -m cald_asr.bin.cls_inference --model_dir exp/cald_target_linformer_k64/best \
        --input reviews.txt --output_dir out/          # one sentence per line
    python -m cald_asr.bin.cls_inference --model_dir exp/cls_teacher_minilm/best \
        --input dump/test/text --output_dir exp/cls_teacher_minilm/best/infer/test   # Kaldi text: <id> <sentence>

Input: a file ending in .txt is read as one sentence per line (ids `line-<number>`, 1-based, zero-padded);
any other file as a Kaldi text file (`<utt-id> <sentence>`); --input_format overrides. --key_file keeps
only the ids in its first column (recipes split a set that way). Text is tokenised with the model's own
tokenizer and cut to the tokens the model can read (512 for BERT; the count cut is in `timing`).

Outputs, Kaldi key-value files sorted by id, each written atomically:
    <output_dir>/label    the predicted class name
    <output_dir>/score    its probability
    <output_dir>/probs    every class: `negative:0.0312 positive:0.9688`
    <output_dir>/failed   `<id> <reason>` for every line that could not be classified (empty if none)
    <output_dir>/timing   examples, failed, truncated, seconds, seconds_per_example (tokenising + model)
A broken line (empty sentence, duplicate id, not UTF-8) is reported on stderr as file:line and in
`failed`; every other line is classified. Exit status: 0 all classified, 1 some lines failed, 2 nothing
could be attempted (bad model, missing input, bad options).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from cald_asr.data.kaldi_dir import c_sort_key, read_kv, write_kv
from cald_asr.data.text_dataset import collate_text, encode, load_text_tokenizer, tokenizer_of
from cald_asr.models.model_file import ModelFileError, load_model
from cald_asr.models.text_classifier import TextClassifier

PROG = "cls_inference"
FORMATS = ("auto", "lines", "kaldi")


class SetupError(Exception):
    """Nothing can be classified: bad options, model or input file."""


def model_max_length(model: TextClassifier) -> int:
    """Tokens the model can read: the encoder's positions, or fewer if a Linformer was built shorter."""
    n = int(getattr(model.encoder, "max_length", 10 ** 9))
    for m in model.modules():
        if hasattr(m, "max_len") and isinstance(getattr(m, "max_len"), int):
            n = min(n, m.max_len)
    return n


class Text2Label:
    """Python entry: Text2Label(model_dir)(sentences) -> [(label, probability, {label: probability})]."""

    def __init__(self, model_dir, device: str = "cpu"):
        model, config = load_model(model_dir)
        if not isinstance(model, TextClassifier):
            raise ModelFileError(f"{model_dir}: not a text classifier (model: {config.get('model')})")
        self.model = model.to(device).eval()
        self.labels: List[str] = list(config["labels"])
        self.tokenizer = load_text_tokenizer(tokenizer_of(config))
        self.max_length = model_max_length(model)
        self.device = torch.device(device)

    def encode(self, sentences: Sequence[str]) -> Tuple[List[List[int]], int]:
        """-> (token ids cut to max_length, how many were cut)."""
        full = encode(self.tokenizer, sentences, 10 ** 9)
        return [x if len(x) <= self.max_length else x[: self.max_length - 1] + x[-1:] for x in full], \
            sum(len(x) > self.max_length for x in full)

    @torch.no_grad()
    def classify_ids(self, ids: Sequence[Sequence[int]]) -> List[Tuple[str, float, Dict[str, float]]]:
        batch = collate_text([{"utt_id": str(i), "input_ids": x, "label": -1} for i, x in enumerate(ids)])
        out = self.model(batch["input_ids"].to(self.device), batch["input_lengths"].to(self.device))
        probs = torch.softmax(out.logits.float(), dim=-1).cpu()
        res = []
        for p in probs:
            k = int(p.argmax())
            res.append((self.labels[k], float(p[k]), {name: float(v) for name, v in zip(self.labels, p)}))
        return res

    def __call__(self, sentences: Sequence[str]):
        return self.classify_ids(self.encode(sentences)[0])


def read_input(path: Path, fmt: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """-> ({id: sentence}, {id: reason} for broken lines); each broken line is printed as file:line."""
    if not path.is_file():
        raise SetupError(f"{path}: input file not found")
    if fmt == "auto":
        fmt = "lines" if path.suffix == ".txt" else "kaldi"
    raw_lines = path.read_bytes().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the final newline ends the last line, it does not start an empty one
    width = max(6, len(str(len(raw_lines))))
    sentences: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    first_line: Dict[str, int] = {}
    for line_no, raw in enumerate(raw_lines, start=1):
        raw = raw.rstrip(b"\r")
        if fmt == "lines":
            key, body = f"line-{line_no:0{width}d}", raw
        elif not raw.strip():
            continue  # blank lines carry no id in a Kaldi file
        else:
            parts = raw.split(maxsplit=1)
            key, body = parts[0].decode("utf-8", "replace"), parts[1] if len(parts) > 1 else b""
        reason = None
        try:
            sentence = " ".join(body.decode("utf-8").split())
            if key in first_line:
                reason = f"duplicate id '{key}' (first on line {first_line[key]}); this line is ignored"
            elif not sentence:
                reason = "empty sentence"
        except UnicodeDecodeError as e:
            reason = f"not valid UTF-8 ({e.reason} at byte {e.start})"
        first_line.setdefault(key, line_no)
        if reason:
            print(f"{PROG}: {path}:{line_no}: {reason}", file=sys.stderr)
            failed.setdefault(key, f"line {line_no}: {reason}")
        else:
            sentences[key] = sentence
    return sentences, failed


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)

    def add(name, **kw):
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        p.add_argument(*names, **kw)

    add("model_dir", required=True, help="model directory (config.yaml + model.safetensors)")
    add("input", required=True, help="sentences: .txt one per line, or a Kaldi text file")
    add("output_dir", required=True)
    add("input_format", choices=FORMATS, default="auto", help="auto: .txt = lines, anything else = kaldi")
    add("key_file", default=None, help="classify only the ids in this file's first column")
    add("batch_size", type=int, default=1, help="sentences per model call (1 gives per-sentence latency)")
    add("num_threads", type=int, default=0, help="torch threads (0: torch's default)")
    add("ngpu", type=int, default=0, help="0: CPU; 1: the first CUDA device")
    return p


def run(args) -> int:
    if args.batch_size < 1:
        raise SetupError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = "cuda:0" if args.ngpu else "cpu"
    if args.ngpu and not torch.cuda.is_available():
        raise SetupError("--ngpu 1 but torch sees no CUDA device")
    sentences, failed = read_input(Path(args.input), args.input_format)
    if args.key_file:
        keep = set(read_kv(args.key_file, allow_empty_value=True))
        sentences = {k: v for k, v in sentences.items() if k in keep}
        failed = {k: v for k, v in failed.items() if k in keep}
    try:
        clf = Text2Label(args.model_dir, device)
    except (ModelFileError, ValueError, FileNotFoundError, ModuleNotFoundError) as e:
        raise SetupError(str(e)) from None
    keys = sorted(sentences, key=c_sort_key)
    label, score, probs = {}, {}, {}
    if keys:  # one untimed call first: the first forward pays for allocations, not for the model
        clf([sentences[keys[0]]])
    t0 = time.perf_counter()
    ids, truncated = clf.encode([sentences[k] for k in keys])
    order = sorted(range(len(keys)), key=lambda i: len(ids[i]))  # batches of similar length pad little
    for start in range(0, len(order), args.batch_size):
        part = order[start: start + args.batch_size]
        for i, (name, p, dist) in zip(part, clf.classify_ids([ids[i] for i in part])):
            label[keys[i]], score[keys[i]] = name, f"{p:.4f}"
            probs[keys[i]] = " ".join(f"{n}:{v:.4f}" for n, v in dist.items())
    seconds = time.perf_counter() - t0
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_kv(out / "label", label)
    write_kv(out / "score", score)
    write_kv(out / "probs", probs)
    write_kv(out / "failed", failed)
    write_kv(out / "timing", {"examples": len(keys), "failed": len(failed), "truncated": truncated,
                              "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                              "seconds": f"{seconds:.4f}",
                              "seconds_per_example": f"{seconds / max(len(keys), 1):.6f}"}, sort=False)
    print(f"{PROG}: {out}: {len(keys)} classified, {len(failed)} failed, {truncated} truncated to "
          f"{clf.max_length} tokens, {1000 * seconds / max(len(keys), 1):.1f} ms per example")
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        return run(args)
    except SetupError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
