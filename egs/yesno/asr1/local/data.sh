#!/usr/bin/env bash
# Writes data/{train_nodev,train_dev,test_yesno} (see cald_asr/corpora/yesno.py).
# The corpus is read from --corpus_dir (or $YESNO), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
. ./path.sh
data_dir=data
corpus_dir=${YESNO:-$MAIN_ROOT/../shared/data/yesno}

. utils/parse_options.sh

if [ ! -e "$corpus_dir/waves_yesno" ]; then
  echo "$0: no yesno corpus at $corpus_dir ($corpus_dir/waves_yesno missing); fetching it into downloads/yesno"
  python -m cald_asr.corpora.download yesno downloads/yesno
  corpus_dir=downloads/yesno
fi
python -m cald_asr.corpora.yesno --corpus_dir "$corpus_dir" --data_dir "$data_dir" 
