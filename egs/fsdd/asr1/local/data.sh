#!/usr/bin/env bash
# Writes data/{train,dev,test,test_isolated,test_long}: connected-digit utterances built from FSDD (see cald_asr/corpora/fsdd.py).
# The corpus is read from --corpus_dir (or $FSDD), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${FSDD:-$MAIN_ROOT/../shared/data/fsdd}
seed=2024  # the connected-digit corpus is random but reproducible
. utils/parse_options.sh
. utils/fetch_corpus.sh fsdd "fsdd corpus" recordings
python -m cald_asr.corpora.fsdd --corpus_dir "$corpus_dir" --data_dir "$data_dir" --seed "$seed"
