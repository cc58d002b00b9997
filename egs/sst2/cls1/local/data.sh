#!/usr/bin/env bash
# Writes data/{train,dev,test} and data/train_<N>k, a seeded random subset of --train_size training
# phrases (see cald_asr/corpora/sst2.py). The corpus is read from --corpus_dir (or $SST2), by default the
# shared read-only copy; where that is absent it is fetched from its public origin into downloads/.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${SST2:-$MAIN_ROOT/../shared/data/sst2}
train_size=16000  # SST-2 has 67,349 training phrases; a 2-core CPU trains on a subset (0: none)
seed=0
. utils/parse_options.sh
. utils/fetch_corpus.sh sst2 SST-2 train.tsv
python -m cald_asr.corpora.sst2 --corpus_dir "$corpus_dir" --data_dir "$data_dir" --train_size "$train_size" --seed "$seed"
