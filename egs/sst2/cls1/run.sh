#!/usr/bin/env bash
# SST-2 sentence polarity: all-MiniLM-L6-v2 teacher -> Linformer students with CALD, all five strategies.
# Trains on a seeded 16k-phrase subset of SST-2's 67,349 (local/data.sh --train_size) to fit a 2-core CPU.
# Everything after the recipe's own options can be overridden, e.g. the BiMamba2 students:
#   ./run.sh --stage 6 --mixer_config ../../../conf/mixer/bimamba2.yaml --student_config conf/train_student_bimamba2.yaml \
#     --cald_configs "conf/cald/target.yaml conf/cald/unguided.yaml"
set -euo pipefail
# what RESULTS.md quotes as the command that produced it
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./cls.sh \
  --train_set train_16k \
  --valid_set dev \
  --test_sets "test" \
  --teacher_config conf/teacher_minilm.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "conf/cald/unguided.yaml conf/cald/target.yaml conf/cald/trajectory.yaml conf/cald/waypoint.yaml conf/cald/hybrid.yaml" \
  --mixer_config conf/linformer_k64.yaml \
  "$@"
