#!/usr/bin/env bash
# CMU AN4 from its 13-dim MFCC files: a Conformer CTC teacher trained from scratch -> BiMamba2 student.
# No robustness evaluation (--noise_snrs ""): noise is mixed into audio, and AN4 comes as features only.
set -euo pipefail
# what RESULTS.md quotes as the command that produced it
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./asr.sh \
  --train_set train_nodev \
  --valid_set train_dev \
  --test_sets "test" \
  --feats_type extracted \
  --token_type bpe \
  --nbpe 30 \
  --teacher_config conf/teacher_conformer.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "../../../conf/cald/target.yaml" \
  --mixer_config conf/bimamba2_d144.yaml \
  --noise_snrs "" \
  "$@"
