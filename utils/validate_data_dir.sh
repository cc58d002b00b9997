#!/usr/bin/env bash
# validate_data_dir.sh [--check_audio] [--fix --log FILE] <data-dir>
# Checks a Kaldi data dir (keys sorted and unique, files consistent, UTF-8, non-empty text, and
# with --check_audio that every audio file reads). Prints every problem as file:line: message.
exec python -m cald_asr.bin.validate_data_dir "$@"
