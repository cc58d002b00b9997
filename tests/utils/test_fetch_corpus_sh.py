"""utils/fetch_corpus.sh, the "shared copy, else fetch" step of every local/data.sh: it keeps --corpus_dir when
that holds the corpus, else says what is missing, fetches the corpus into downloads/<name> (a complete copy
there is left as it is, so no network is needed here) and points corpus_dir at it."""

import os
import sys
from pathlib import Path

import pytest

from shared_data import SHARED_DATA

UTILS = Path(__file__).resolve().parents[2] / "utils"
YESNO = SHARED_DATA / "yesno" / "waves_yesno"
# as in a data.sh: strict mode, the corpus_dir option, then the helper; python is the one running the tests
SNIPPET = f"""set -euo pipefail
export PATH="{Path(sys.executable).parent}:$PATH"
corpus_dir=$1; shift
. {UTILS}/fetch_corpus.sh "$@"
echo "corpus_dir=$corpus_dir"
"""


def test_a_corpus_dir_holding_every_path_is_kept(run_bash, tmp_path):
    (tmp_path / "corpus" / "pos").mkdir(parents=True)
    (tmp_path / "corpus" / "train.tsv").write_text("label\tsentence\n")
    r = run_bash(SNIPPET, [str(tmp_path / "corpus"), "sst2", "SST-2", "pos/", "train.tsv"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"corpus_dir={tmp_path / 'corpus'}\n"
    assert not (tmp_path / "downloads").exists()


def test_a_missing_path_fetches_the_corpus_into_downloads(run_bash, tmp_path):
    if not YESNO.is_dir():
        pytest.skip(f"shared corpus {YESNO} not present")
    fetched = tmp_path / "downloads" / "yesno" / "waves_yesno"
    fetched.mkdir(parents=True)
    for wav in YESNO.glob("*.wav"):
        os.symlink(wav, fetched / wav.name)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "waves_yesno").write_text("a file, not the folder asked for")
    r = run_bash(SNIPPET, [str(tmp_path / "corpus"), "yesno", "yesno corpus", "waves_yesno/"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    corpus = tmp_path / "corpus"
    assert r.stdout.splitlines() == [
        f"snippet: no yesno corpus at {corpus} ({corpus}/waves_yesno/ missing); fetching it into downloads/yesno",
        "downloads/yesno",  # what cald_asr.corpora.download prints: the complete copy it found there
        "corpus_dir=downloads/yesno",
    ]


def test_every_missing_path_is_named_and_a_failed_fetch_stops_the_script(run_bash, tmp_path):
    (tmp_path / "corpus" / "neg").mkdir(parents=True)
    r = run_bash(SNIPPET, [str(tmp_path / "corpus"), "timit", "TIMIT", "pos/", "neg/", "doc.txt"], cwd=tmp_path)
    assert r.returncode != 0
    corpus = tmp_path / "corpus"
    assert r.stdout == (
        f"snippet: no TIMIT at {corpus} ({corpus}/pos/ and {corpus}/doc.txt missing); fetching it "
        "into downloads/timit\n"
    )
    assert "error: unknown corpus 'timit'" in r.stderr
