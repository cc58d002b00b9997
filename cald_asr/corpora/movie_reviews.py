"""Pang & Lee movie reviews (polarity v2.0: 1,000 positive and 1,000 negative full reviews), written as
Kaldi-style text data sets: the long-document task of the text recipes.

Input: `<corpus_dir>/{pos,neg}/<name>.txt`, one review per file, one sentence per line, already lower-cased
and tokenised. Each review becomes one line of `text` (its lines joined by a space, white space collapsed).

Split: a fixed, seeded, *stratified* 80/10/10 split, drawn per class: each class' files, sorted by name,
are permuted by numpy's default_rng(seed); the first 10 % go to `test`, the next 10 % to `dev`, the rest
to `train`. With 1,000 reviews per class that is 1,600 / 200 / 200, each set exactly balanced, so
accuracies on dev and test are not shifted by the class mix of a draw.

Output, per set: `data/<set>/text` (`<utt-id> <review>`) and `data/<set>/label` (`<utt-id> negative|positive`);
utterance ids are `mr-<pos|neg>-<file name without .txt>`.

Usage: python -m cald_asr.corpora.movie_reviews --corpus_dir DIR --data_dir data [--seed 2024]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from cald_asr.corpora.cli import corpus_parser, run_main
from cald_asr.corpora.data_set import CorpusError
from cald_asr.data.text_dataset import write_text_set

CLASSES = {"neg": "negative", "pos": "positive"}
SETS = ("train", "dev", "test")
HELD_OUT = 0.1  # share of each class in dev, and again in test


def read_review(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    review = " ".join(text.split())
    if not review:
        raise CorpusError(f"{path}: empty review")
    return review


def list_reviews(corpus_dir: Path | str) -> Dict[str, List[Path]]:
    out = {}
    for d in CLASSES:
        folder = Path(corpus_dir) / d
        if not folder.is_dir():
            raise CorpusError(f"{folder}: missing; expected the polarity v2.0 reviews under pos/ and neg/")
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise CorpusError(f"{folder}: no .txt reviews")
        out[d] = files
    return out


def split_reviews(names: Sequence[str], seed: int) -> Dict[str, List[str]]:
    """One class' file names -> {set: sorted names}: seeded permutation, test first, then dev, then train."""
    names = sorted(names)
    n_held = int(round(len(names) * HELD_OUT))
    if len(names) < 2 * n_held + 1 or n_held == 0:
        raise CorpusError(
            f"{len(names)} reviews in a class are too few for a {HELD_OUT:.0%}/{HELD_OUT:.0%} dev/test split"
        )
    order = np.random.default_rng(seed).permutation(len(names))
    picked = [names[i] for i in order]
    return {
        "test": sorted(picked[:n_held]),
        "dev": sorted(picked[n_held : 2 * n_held]),
        "train": sorted(picked[2 * n_held :]),
    }


def prepare_movie_reviews(corpus_dir, data_dir, seed: int = 2024) -> Dict[str, int]:
    """Write data/{train,dev,test}; returns reviews per set."""
    files = list_reviews(corpus_dir)
    sets: Dict[str, Dict[str, Path]] = {s: {} for s in SETS}
    for d, paths in files.items():
        by_name = {p.stem: p for p in paths}
        for s, names in split_reviews(list(by_name), seed).items():
            sets[s].update({f"mr-{d}-{n}": by_name[n] for n in names})
    counts = {}
    for s, utts in sets.items():
        text = {u: read_review(p) for u, p in utts.items()}
        label = {u: CLASSES[u.split("-")[1]] for u in utts}
        write_text_set(Path(data_dir) / s, text, label)
        counts[s] = len(utts)
        words = sum(len(t.split()) for t in text.values())
        pos = sum(v == "positive" for v in label.values())
        print(
            f"movie_reviews: {s:<6} {len(utts):5d} reviews ({pos} positive), {words / len(utts):6.0f} words on average"
        )
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = corpus_parser(__doc__, "folder holding pos/ and neg/")
    p.add_argument("--seed", type=int, default=2024)
    return run_main(p, argv, lambda args: prepare_movie_reviews(args.corpus_dir, args.data_dir, args.seed))


if __name__ == "__main__":
    sys.exit(main())
