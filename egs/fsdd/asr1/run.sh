#!/usr/bin/env bash
# FSDD connected digits: Whisper tiny.en teacher -> BiMamba2 students with CALD.
# Everything after the recipe's own options can be overridden: ./run.sh --stage 3 --nj 4
# All five strategies: ./run.sh --stage 6 --cald_configs "$(echo ../../../conf/cald/*.yaml)"
set -euo pipefail
# what RESULTS.md quotes as the command that produced it
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./asr.sh \
  --train_set train \
  --valid_set dev \
  --test_sets "test test_isolated test_long" \
  --feats_type raw \
  --fs 16000 \
  --max_sec 20 \
  --token_type char \
  --teacher_config conf/teacher_whisper_tiny_en.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "../../../conf/cald/target.yaml ../../../conf/cald/unguided.yaml" \
  --mixer_config ../../../conf/mixer/bimamba2.yaml \
  "$@"
