#!/usr/bin/env bash
# Writes data/{train_nodev,train_dev,test_yesno} (see cald_asr/corpora/yesno.py).
# The corpus is read from --corpus_dir (or $YESNO), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${YESNO:-$MAIN_ROOT/../shared/data/yesno}
. utils/parse_options.sh
. utils/fetch_corpus.sh yesno "yesno corpus" waves_yesno
python -m cald_asr.corpora.yesno --corpus_dir "$corpus_dir" --data_dir "$data_dir"
