#!/usr/bin/env bash
# Writes data/{train_nodev,train_dev,test}: AN4 MFCC features as kaldiio feats.scp (see cald_asr/corpora/an4.py).
# The corpus is read from --corpus_dir (or $AN4), by default the shared read-only copy; where that
# is absent it is fetched from its public origin into downloads/.
set -euo pipefail
. ./path.sh
data_dir=data
corpus_dir=${AN4:-$MAIN_ROOT/../shared/data/an4_mfcc}

. utils/parse_options.sh

if [ ! -e "$corpus_dir/etc/an4_train.transcription" ]; then
  echo "$0: no an4 corpus at $corpus_dir ($corpus_dir/etc/an4_train.transcription missing); fetching it into downloads/an4_mfcc"
  python -m cald_asr.corpora.download an4_mfcc downloads/an4_mfcc
  corpus_dir=downloads/an4_mfcc
fi
python -m cald_asr.corpora.an4 --corpus_dir "$corpus_dir" --data_dir "$data_dir" 
