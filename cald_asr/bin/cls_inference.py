"""Classify sentences with a text model (teacher or CALD student): sentences in, labels and scores out.

    python -m cald_asr.bin.cls_inference --model_dir exp/cald_target_linformer_k64/best \
        --input reviews.txt --output_dir out/          # one sentence per line
    python -m cald_asr.bin.cls_inference --model_dir exp/cls_teacher_minilm/best \
        --input dump/test/text --output_dir exp/cls_teacher_minilm/best/infer/test   # Kaldi text: <id> <sentence>

Input: a file ending in .txt is read as one sentence per line (ids `line-<number>`, 1-based, zero-padded);
any other file as a Kaldi text file (`<utt-id> <sentence>`); --input_format overrides. --key_file keeps
only the ids in its first column (recipes split a set that way). Text is tokenised with the model's own
tokenizer and cut to the tokens the model can read (512 for BERT; the count cut is in `timing`).

Outputs, Kaldi key-value files sorted by id, each written atomically at the end:
    <output_dir>/label    the predicted class name
    <output_dir>/score    its probability
    <output_dir>/probs    every class: `negative:0.0312 positive:0.9688`
    <output_dir>/failed   `<id> <reason>` for every line that could not be classified (empty if none)
    <output_dir>/timing   examples, failed, truncated, seconds, seconds_per_example (tokenising + model)
    <output_dir>/status   keys, classified, failed: written last, only when the job ran to its end
A broken line (empty sentence, duplicate id, not UTF-8) is reported on stderr as file:line and in
`failed`; every other line is classified. Exit status: 0 all classified, 1 some lines failed, 2 nothing
could be attempted (bad model, missing input, bad options), 3 crashed or terminated (SIGTERM, Ctrl-C).

Resuming, as asr_inference does (cald_asr/decode/journal.py): every result is appended to
<output_dir>/journal.jsonl as it is computed; a rerun into the same --output_dir classifies only the ids
not done yet with the same sentence, and results of another model or options there are removed first.
The fingerprint counts config.yaml, model.safetensors, --input_format, and --batch_size, --num_threads
and --ngpu too: they change the time per example this tool reports (and padding moves probabilities in
the 4th decimal), so results timed another way are not mixed into one `timing`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from cald_asr.data.kaldi_dir import c_sort_key, read_kv, write_kv
from cald_asr.data.text_dataset import collate_text, encode
from cald_asr.decode import journal
from cald_asr.models.model_file import CONFIG_NAME, WEIGHTS_NAME, ModelFileError, load_model
from cald_asr.models.text_classifier import TextClassifier
from cald_asr.text.hf_tokenizer import load_text_tokenizer, tokenizer_of

PROG = "cls_inference"
FORMATS = ("auto", "lines", "kaldi")


class SetupError(Exception):
    """Nothing can be classified: bad options, model or input file."""


def model_max_length(model: TextClassifier) -> int:
    """Tokens the model can read: the encoder's positions, or fewer if a Linformer was built shorter."""
    n = int(getattr(model.encoder, "max_length", 10**9))
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

    def encode_each(self, sentences: Sequence[str]) -> List[Tuple[List[int], bool]]:
        """-> per sentence: (token ids cut to max_length, keeping the final [SEP]; whether it was cut)."""
        full = encode(self.tokenizer, sentences, 10**9)
        return [(x[: self.max_length - 1] + x[-1:], True) if len(x) > self.max_length else (x, False) for x in full]

    def encode(self, sentences: Sequence[str]) -> Tuple[List[List[int]], int]:
        """-> (token ids cut to max_length, how many were cut)."""
        each = self.encode_each(sentences)
        return [x for x, _ in each], sum(cut for _, cut in each)

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
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )

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


def sentence_id(sentence: str) -> str:
    """What a journal record remembers of its input: an edited sentence is classified again."""
    return hashlib.sha1(sentence.encode("utf-8")).hexdigest()


def run(args) -> int:
    out = Path(args.output_dir)
    (out / journal.STATUS).unlink(missing_ok=True)  # first: whatever fails below, no stale "finished"
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
    config = Path(args.model_dir) / CONFIG_NAME if Path(args.model_dir).is_dir() else Path(args.model_dir)
    fp = journal.make_fingerprint(
        {"config.yaml": config, "model.safetensors": config.with_name(WEIGHTS_NAME)},
        {k: getattr(args, k) for k in ("input_format", "batch_size", "num_threads", "ngpu")},
    )
    journal.open_output_dir(out, fp, ("label", "score", "probs", "failed", "timing"), PROG)
    keys = sorted(sentences, key=c_sort_key)
    inputs = {k: sentence_id(sentences[k]) for k in keys}
    done = journal.reusable(journal.read_journal(out / journal.JOURNAL, journal.say_stderr), keys, inputs)
    todo = [k for k in keys if k not in done]
    if done:
        print(
            f"{PROG}: {out}: {len(done)} of {len(keys)} example(s) already classified with this model and "
            f"options, {len(todo)} to classify",
            file=sys.stderr,
        )
    if todo:  # one untimed call first: the first forward pays for allocations, not for the model
        clf([sentences[todo[0]]])
    with journal.Journal(out / journal.JOURNAL) as jr:
        t0 = time.perf_counter()
        each = clf.encode_each([sentences[k] for k in todo])
        ids = [x for x, _ in each]
        encode_share = (time.perf_counter() - t0) / max(len(todo), 1)
        order = sorted(range(len(todo)), key=lambda i: len(ids[i]))  # batches of similar length pad little
        for start in range(0, len(order), args.batch_size):
            part = order[start : start + args.batch_size]
            t1 = time.perf_counter()
            res = clf.classify_ids([ids[i] for i in part])
            share = (time.perf_counter() - t1) / len(part)
            for i, (name, p, dist) in zip(part, res):
                done[todo[i]] = {
                    "key": todo[i],
                    "input": inputs[todo[i]],
                    "label": name,
                    "score": f"{p:.4f}",
                    "probs": " ".join(f"{n}:{v:.4f}" for n, v in dist.items()),
                    "truncated": each[i][1],
                    "seconds": encode_share + share,
                }
                jr.append(done[todo[i]])
    seconds = sum(float(done[k]["seconds"]) for k in keys)
    truncated = sum(bool(done[k]["truncated"]) for k in keys)
    write_kv(out / "label", {k: done[k]["label"] for k in keys})
    write_kv(out / "score", {k: done[k]["score"] for k in keys})
    write_kv(out / "probs", {k: done[k]["probs"] for k in keys})
    write_kv(out / "failed", failed)
    write_kv(
        out / "timing",
        {
            "examples": len(keys),
            "failed": len(failed),
            "truncated": truncated,
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "seconds": f"{seconds:.4f}",
            "seconds_per_example": f"{seconds / max(len(keys), 1):.6f}",
        },
        sort=False,
    )
    journal.write_status(out, {"keys": len(set(keys) | set(failed)), "classified": len(keys), "failed": len(failed)})
    print(
        f"{PROG}: {out}: {len(keys)} classified, {len(failed)} failed, {truncated} truncated to "
        f"{clf.max_length} tokens, {1000 * seconds / max(len(keys), 1):.1f} ms per example"
    )
    return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    return journal.run_job(PROG, lambda: run(args), args.output_dir, (SetupError,))


if __name__ == "__main__":
    sys.exit(main())
