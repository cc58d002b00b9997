#!/usr/bin/env bash
# split_dev.sh (--dev_speakers N | --dev_share F) [--seed S] <src-dir> <train-out> <dev-out>
# Holds out a dev set of whole speakers from a data dir, deterministically (as Kaldi's
# subset_data_dir_tr_cv.sh does), for a corpus with only a training and a test set:
#   utils/split_dev.sh --dev_share 0.1 data/train data/train_nodev data/train_dev
# The speakers are shuffled with --seed (default 0); --dev_speakers N holds out the first N, --dev_share F
# the fewest whose utterances come nearest F of the set's. Every file keyed by utterance is split.
exec python -m cald_asr.bin.split_dev "$@"
