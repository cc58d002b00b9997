#!/usr/bin/env bash
# Writes data/{train_nodev,train_dev,test}: AN4 MFCC features as kaldiio feats.scp (see cald_asr/corpora/an4.py).
# The corpus is read from --corpus_dir (or $AN4), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${AN4:-$MAIN_ROOT/../shared/data/an4_mfcc}
. utils/parse_options.sh
. utils/fetch_corpus.sh an4_mfcc "an4 corpus" etc/an4_train.transcription
python -m cald_asr.corpora.an4 --corpus_dir "$corpus_dir" --data_dir "$data_dir"
