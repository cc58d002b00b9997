#!/usr/bin/env bash
# validate_data_dir.sh [--check_audio [--fs HZ] [--pipe_timeout S]] [--no_text] [--fix --log FILE] <data-dir>
# Checks a Kaldi data dir (keys sorted and unique, ids usable as file names, files consistent, UTF-8,
# non-empty text, and with --check_audio that every audio entry decodes to finite samples at one rate,
# --fs if given; pipe commands run, each under --pipe_timeout seconds, default $CALD_ASR_PIPE_TIMEOUT or
# 300; and that feature matrices read and share one dimension). Prints every problem as file:line: message.
# --no_text (or --no-text, as in Kaldi): a dir without transcripts is valid, e.g. only wav.scp; utt2spk and
# spk2utt are then optional too. Utterance ids that do not begin with their speaker id (Kaldi's rule) give a
# WARNING on stderr naming the first ones and the count; the dir is still valid.
exec python -m cald_asr.bin.validate_data_dir "$@"
