#!/usr/bin/env bash
# Writes data/{train,dev,test}: a seeded, stratified 1,600/200/200 split of the 2,000 reviews (see
# cald_asr/corpora/movie_reviews.py). The corpus is read from --corpus_dir (or $MOVIE_REVIEWS), by default
# the shared read-only copy; where that is absent it is fetched from its public origin into downloads/.
set -euo pipefail
# shellcheck source=egs/TEMPLATE/asr1/path.sh
. ./path.sh
data_dir=data
corpus_dir=${MOVIE_REVIEWS:-$MAIN_ROOT/../shared/data/movie_reviews}
seed=2024
. utils/parse_options.sh
. utils/fetch_corpus.sh movie_reviews "movie reviews corpus" pos/ neg/
python -m cald_asr.corpora.movie_reviews --corpus_dir "$corpus_dir" --data_dir "$data_dir" --seed "$seed"
