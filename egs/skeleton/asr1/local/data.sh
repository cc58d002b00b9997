#!/usr/bin/env bash
# Writes data/{train,train_nodev,train_dev,test} from a folder corpus (see cald_asr/corpora/folder.py):
#   <corpus_dir>/train/ and <corpus_dir>/test/, each with its audio files (any depth, any format libsndfile
#   reads, any rate), a `transcripts` file (`<file-stem> <transcript>` per line) and optionally a `speakers`
#   file (`<file-stem> <speaker-id>`). A dev set of whole speakers (--dev_share of train's utterances) is held
#   out of train: train_nodev trains, train_dev selects best/.
# A corpus in another layout: replace the python line with your own preparer (cald_asr/corpora/ has one module
# per corpus, each with prepare_<corpus>() and main()), writing the same data dirs.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${CORPUS:-}  # required: --corpus_dir DIR (or $CORPUS)
sets="train test"
dev_share=0.1
seed=0
. utils/parse_options.sh
[ -n "$corpus_dir" ] || { echo "$0: error: --corpus_dir is required (a folder with train/ and test/)" >&2; exit 1; }
python -m cald_asr.corpora.folder --corpus_dir "$corpus_dir" --data_dir "$data_dir" --sets "$sets" \
  --dev_from train --dev_share "$dev_share" --seed "$seed"
