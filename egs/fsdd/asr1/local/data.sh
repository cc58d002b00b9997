#!/usr/bin/env bash
# Writes data/{train,dev,test,test_isolated,test_long}: connected-digit utterances built from FSDD (see cald_asr/corpora/fsdd.py).
# The corpus is read from --corpus_dir (or $FSDD), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
. ./path.sh
data_dir=data
corpus_dir=${FSDD:-$MAIN_ROOT/../shared/data/fsdd}
seed=2024  # the connected-digit corpus is random but reproducible
. utils/parse_options.sh

if [ ! -e "$corpus_dir/recordings" ]; then
  echo "$0: no fsdd corpus at $corpus_dir ($corpus_dir/recordings missing); fetching it into downloads/fsdd"
  python -m cald_asr.corpora.download fsdd downloads/fsdd
  corpus_dir=downloads/fsdd
fi
python -m cald_asr.corpora.fsdd --corpus_dir "$corpus_dir" --data_dir "$data_dir" --seed "$seed"
