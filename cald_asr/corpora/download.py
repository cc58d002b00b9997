"""Where each shared corpus comes from, and fetching it when the shared copy is absent.

Recipes read a corpus from a path variable (default `../shared/data/<name>`); `resolve_corpus_dir`
returns that folder when it holds a complete copy, else a cache folder, fetched on first use from the
public origin (see ../shared/data/README.md beside the project for sizes and licences):

| name              | origin                                                        | taken folder  |
|-------------------|---------------------------------------------------------------|---------------|
| fsdd              | github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0)| recordings/   |
| an4_mfcc          | github.com/cphazen/Machine-Learning-Project-ASR (CMU AN4)     | an4/          |
| yesno             | github.com/keighrim/kaldi-yesno-tutorial (SLR1, CC BY 4.0)    | waves_yesno/  |
| sst2              | github.com/awake020/pytorch_Bert_sst2 (SST, Socher et al.)    | SST-2/        |
| movie_reviews     | NLTK data movie_reviews.zip (Pang & Lee v2.0)                 | movie_reviews/|
| sentence_polarity | NLTK data sentence_polarity.zip (rt-polarity v1.0)            | sentence_polarity/ |

GitHub folders are fetched with a shallow sparse `git clone` when git is installed, else (or when that
fails) from the repository's `archive/HEAD.zip`; NLTK corpora from their zip. Either way only the
named folder is kept, and the result is checked against the expected content before it is moved into
place, so an interrupted fetch never looks complete.

Usage: python -m cald_asr.corpora.download NAME DEST
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from cald_asr.corpora.cli import run_main
from cald_asr.corpora.data_set import CorpusError

CACHE_ENV = "CALD_ASR_DATA_CACHE"
_NLTK_ZIP = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/{}.zip"


@dataclass(frozen=True)
class Origin:
    zip_url: str
    folder: str  # inside the archive, below GitHub's top-level '<repo>-<ref>/' if there is one
    into: str  # where that folder lands in the corpus dir; '' = the corpus dir itself
    expected: Tuple[Tuple[str, int], ...]  # (glob, minimum matches) that a complete copy satisfies
    licence: str
    git_url: Optional[str] = None  # tried first when git is installed

    def missing(self, corpus_dir: Path) -> List[str]:
        """Descriptions of what a complete copy would have and `corpus_dir` lacks."""
        out = []
        for pattern, minimum in self.expected:
            n = sum(1 for _ in corpus_dir.glob(pattern)) if corpus_dir.is_dir() else 0
            if n < minimum:
                out.append(f"{pattern} ({n} of {minimum})")
        return out


def _github(repo: str, folder: str, into: str, expected, licence: str) -> Origin:
    return Origin(
        f"https://github.com/{repo}/archive/HEAD.zip",
        folder,
        into,
        tuple(expected),
        licence,
        git_url=f"https://github.com/{repo}.git",
    )


ORIGINS: Dict[str, Origin] = {
    # FSDD as shared here is HEAD 26eb9aa (2024-05); HEAD is fetched, the recordings have not changed since.
    "fsdd": _github(
        "Jakobovski/free-spoken-digit-dataset",
        "recordings",
        "recordings",
        [("recordings/*_*_*.wav", 3000)],
        "CC BY-SA 4.0",
    ),
    "an4_mfcc": _github(
        "cphazen/Machine-Learning-Project-ASR",
        "an4",
        "",
        [
            ("etc/an4_train.transcription", 1),
            ("etc/an4_test.transcription", 1),
            ("etc/an4_train.fileids", 1),
            ("etc/an4_test.fileids", 1),
            ("feat/an4_clstk/*/*.mfc", 948),
            ("feat/an4test_clstk/*/*.mfc", 130),
        ],
        "CMU AN4 licence (BSD-style)",
    ),
    "yesno": _github(
        "keighrim/kaldi-yesno-tutorial",
        "waves_yesno",
        "waves_yesno",
        [("waves_yesno/*.wav", 60)],
        "CC BY 4.0 (OpenSLR SLR1)",
    ),
    "sst2": _github(
        "awake020/pytorch_Bert_sst2",
        "SST-2",
        "",
        [("train.tsv", 1), ("dev.tsv", 1), ("test.tsv", 1)],
        "SST research data (Socher et al. 2013)",
    ),
    "movie_reviews": Origin(
        _NLTK_ZIP.format("movie_reviews"),
        "movie_reviews",
        "",
        (("pos/*.txt", 1000), ("neg/*.txt", 1000)),
        "research use (Pang & Lee), via NLTK data",
    ),
    "sentence_polarity": Origin(
        _NLTK_ZIP.format("sentence_polarity"),
        "sentence_polarity",
        "",
        (("rt-polarity.pos", 1), ("rt-polarity.neg", 1)),
        "research use (Pang & Lee), via NLTK data",
    ),
}


def _origin(name: str, origins: Mapping[str, Origin]) -> Origin:
    if name not in origins:
        raise CorpusError(f"unknown corpus '{name}'; known: {', '.join(sorted(origins))}")
    return origins[name]


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cald_asr" / "corpora")


def extract_folder(zip_path: Path, folder: str, dest: Path) -> int:
    """Extract the members under `folder` (at the top or below one top-level dir) into dest; returns files written."""
    want = PurePosixPath(folder).parts
    written = 0
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or ".." in parts or info.filename.startswith("/"):
                continue
            for start in (0, 1):
                if parts[start : start + len(want)] == want and len(parts) > start + len(want):
                    target = dest.joinpath(*parts[start + len(want) :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    written += 1
                    break
    if not written:
        raise CorpusError(f"{zip_path}: no folder '{folder}' in the archive")
    return written


def fetch_zip(url: str, folder: str, dest: Path, timeout: float = 120.0) -> None:
    """Download `url` (any urllib scheme) and extract `folder` into dest."""
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "archive.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(zip_path, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            raise CorpusError(f"{url}: download failed ({e})") from None
        extract_folder(zip_path, folder, dest)


def fetch_git(url: str, folder: str, dest: Path, timeout: float = 600.0) -> None:
    """Shallow, sparse clone of `url`, keeping only `folder`, copied into dest."""
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        cmds = [
            ["git", "clone", "--quiet", "--depth", "1", "--filter=blob:none", "--sparse", url, str(clone)],
            ["git", "-C", str(clone), "sparse-checkout", "set", folder],
        ]
        for cmd in cmds:
            try:
                # no credential prompt: a missing repository must fail, not wait for a password
                subprocess.run(
                    cmd,
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
                )
            except (OSError, subprocess.SubprocessError) as e:
                detail = getattr(e, "stderr", None) or str(e)
                raise CorpusError(f"{url}: '{' '.join(cmd[:3])} ...' failed: {detail.strip()}") from None
        src = clone / folder
        if not src.is_dir():
            raise CorpusError(f"{url}: no folder '{folder}' in the repository")
        shutil.copytree(src, dest, dirs_exist_ok=True)


def fetch_corpus(name: str, dest_dir: os.PathLike | str, origins: Mapping[str, Origin] = ORIGINS) -> Path:
    """Make dest_dir a complete copy of corpus `name`, downloading it unless it already is one."""
    origin = _origin(name, origins)
    dest = Path(dest_dir)
    if dest.exists():
        missing = origin.missing(dest)
        if not missing:
            return dest
        if any(dest.iterdir()):
            raise CorpusError(
                f"{dest}: exists but is not a complete '{name}' copy (missing {'; '.join(missing)}); "
                "remove it or fetch elsewhere"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.partial-") as tmp:
        staged = Path(tmp) / "corpus"
        target = staged / origin.into if origin.into else staged
        attempts = []
        if origin.git_url and shutil.which("git"):
            attempts.append((fetch_git, origin.git_url))
        attempts.append((fetch_zip, origin.zip_url))
        for fetch, url in attempts:
            shutil.rmtree(staged, ignore_errors=True)
            target.mkdir(parents=True)
            try:
                fetch(url, origin.folder, target)
            except CorpusError as e:
                errors.append(str(e))
                continue
            missing = origin.missing(staged)
            if missing:
                errors.append(f"{url}: fetched copy lacks {'; '.join(missing)}")
                continue
            if dest.exists():
                dest.rmdir()  # empty, checked above
            os.replace(staged, dest)
            print(f"fetched {name} into {dest} (licence: {origin.licence})")
            return dest
    raise CorpusError(f"could not fetch '{name}':\n  " + "\n  ".join(errors))


def resolve_corpus_dir(
    name: str,
    preferred_dir: os.PathLike | str | None,
    cache_dir: os.PathLike | str | None = None,
    origins: Mapping[str, Origin] = ORIGINS,
) -> Path:
    """preferred_dir when it holds a complete copy, else `<cache_dir>/<name>` (fetched if needed)."""
    origin = _origin(name, origins)
    if preferred_dir is not None and not origin.missing(Path(preferred_dir)):
        return Path(preferred_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return fetch_corpus(name, cache / name, origins)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help=f"one of: {', '.join(sorted(ORIGINS))}")
    p.add_argument("dest", help="folder to fill (left as is when it already holds a complete copy)")
    return run_main(p, argv, lambda args: print(fetch_corpus(args.name, args.dest)))


if __name__ == "__main__":
    sys.exit(main())
