"""GLUE SST-2 (Socher et al. 2013) sentence polarity, written as Kaldi-style text data sets.

Input: `<corpus_dir>/{train,dev,test}.tsv`, two tab-separated columns under a header naming them:
`label` (0 = negative, 1 = positive) and the text, called `sentence` (GLUE) or `content` (the shared
copy's dev and test files); either column order is accepted. Blank lines are skipped; any other line
without exactly two columns, with an unknown label or with an empty text is an error naming file:line.

Output, per set: `data/<set>/text` (`<utt-id> <sentence>`, white space collapsed) and `data/<set>/label`
(`<utt-id> negative|positive`). Utterance ids are `sst2-<set>-<row>`, row = the 1-based data row in the
file, zero-padded, so every id leads back to its line (line = row + 1, after the header).

Sets: `train` (67,349 phrases), `dev` (872), `test` (1,821), as given. `train_size N` adds the set
`train_<N/1000>k` (or `train_<N>`): a seeded random subset of N training phrases (not stratified: a
random draw keeps SST-2's 56 % positive share to within a point at these sizes), for machines on which
the whole training set is too slow; its `description` file says what it is.

Usage: python -m cald_asr.corpora.sst2 --corpus_dir DIR --data_dir data [--train_size 16000 --seed 0]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.text_dataset import write_text_set

SETS = ("train", "dev", "test")
LABELS = {"0": "negative", "1": "positive"}
TEXT_COLUMNS = ("sentence", "content")


def read_tsv(path: Path | str) -> List[Tuple[int, str, str]]:
    """-> [(1-based data row, class name, sentence)]; errors name file:line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: missing; expected an SST-2 TSV with a 'label<TAB>sentence' header")
    rows: List[Tuple[int, str, str]] = []
    label_col = text_col = None
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            cols = line.split("\t")
            if label_col is None:
                names = [c.strip().lower() for c in cols]
                if len(names) != 2 or "label" not in names or not set(names) & set(TEXT_COLUMNS):
                    raise CorpusError(
                        f"{path}:{line_no}: header {line!r} should name two tab-separated columns, "
                        f"'label' and 'sentence' (or 'content')"
                    )
                label_col = names.index("label")
                text_col = 1 - label_col
                continue
            if len(cols) != 2:
                raise CorpusError(
                    f"{path}:{line_no}: expected 2 tab-separated columns (label, sentence), found {len(cols)}"
                )
            label = cols[label_col].strip()
            if label not in LABELS:
                raise CorpusError(f"{path}:{line_no}: unknown label {label!r} (expected {' or '.join(LABELS)})")
            sentence = " ".join(cols[text_col].split())
            if not sentence:
                raise CorpusError(f"{path}:{line_no}: empty sentence")
            rows.append((len(rows) + 1, LABELS[label], sentence))
    if label_col is None:
        raise CorpusError(f"{path}: empty file (expected a header and labelled sentences)")
    if not rows:
        raise CorpusError(f"{path}: no sentences after the header")
    return rows


def subset_name(n: int) -> str:
    return f"train_{n // 1000}k" if n % 1000 == 0 else f"train_{n}"


def subset_rows(n_rows: int, size: int, seed: int) -> List[int]:
    """Sorted 0-based indices of a seeded random subset of `size` rows."""
    if not 0 < size <= n_rows:
        raise ValueError(f"train_size {size} must be between 1 and the {n_rows} training phrases")
    return sorted(np.random.default_rng(seed).choice(n_rows, size, replace=False).tolist())


def prepare_sst2(corpus_dir, data_dir, train_size: Optional[int] = None, seed: int = 0) -> Dict[str, int]:
    """Write data/{train,dev,test} (and the subset set with train_size); returns examples per set."""
    corpus_dir, data_dir = Path(corpus_dir), Path(data_dir)
    counts: Dict[str, int] = {}
    all_rows = {s: read_tsv(corpus_dir / f"{s}.tsv") for s in SETS}
    width = len(str(max(len(r) for r in all_rows.values())))
    ids: Dict[str, List[str]] = {}
    for s, rows in all_rows.items():
        ids[s] = [f"sst2-{s}-{row:0{width}d}" for row, _, _ in rows]
        write_text_set(data_dir / s, {u: r[2] for u, r in zip(ids[s], rows)}, {u: r[1] for u, r in zip(ids[s], rows)})
        counts[s] = len(rows)
    if train_size:
        rows = all_rows["train"]
        keep = subset_rows(len(rows), int(train_size), seed)
        name = subset_name(int(train_size))
        write_text_set(
            data_dir / name,
            {ids["train"][i]: rows[i][2] for i in keep},
            {ids["train"][i]: rows[i][1] for i in keep},
            f"seeded random subset (seed {seed}) of {len(keep):,} of the {len(rows):,} SST-2 training phrases",
        )
        counts[name] = len(keep)
    for s, n in counts.items():
        labels = (data_dir / s / "label").read_text(encoding="utf-8").split()[1::2]
        pos = sum(x == "positive" for x in labels)
        print(f"sst2: {s:<10} {n:6d} sentences, {100.0 * pos / n:5.1f} % positive")
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding {train,dev,test}.tsv")
    p.add_argument(
        "--train_size",
        "--train-size",
        type=int,
        default=0,
        help="also write a seeded random subset of this many training phrases (0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    # a --train_size out of range is a ValueError
    return run_main(
        p,
        argv,
        lambda args: prepare_sst2(args.corpus_dir, args.data_dir, args.train_size or None, args.seed),
        errors=(CorpusError, ValueError),
    )


if __name__ == "__main__":
    sys.exit(main())
