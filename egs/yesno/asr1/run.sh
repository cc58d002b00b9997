#!/usr/bin/env bash
# yesno (60 files, one speaker): the smoke-test recipe; runs in a few minutes.
set -euo pipefail
# what RESULTS.md quotes as the command that produced it
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./asr.sh \
  --train_set train_nodev \
  --valid_set train_dev \
  --test_sets "test_yesno" \
  --feats_type raw \
  --fs 16000 \
  --token_type char \
  --teacher_config conf/teacher_tiny.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "../../../conf/cald/target.yaml ../../../conf/cald/unguided.yaml" \
  --mixer_config conf/bimamba2_tiny.yaml \
  "$@"
