#!/usr/bin/env bash
# Movie reviews (Pang & Lee v2.0, 2,000 full reviews, cut to the model's 512 tokens): all-MiniLM-L6-v2
# teacher -> target-guided Linformer and BiMamba2 students with CALD; RESULTS.md reports accuracy and time
# per review. The BiMamba2 student:
#   ./run.sh --stage 6 --mixer_config ../../../conf/mixer/bimamba2.yaml --student_config conf/train_student_bimamba2.yaml
set -euo pipefail
# what RESULTS.md quotes as the command that produced it
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./cls.sh \
  --train_set train \
  --valid_set dev \
  --test_sets "test" \
  --teacher_config conf/teacher_minilm.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "conf/cald/target.yaml" \
  --mixer_config conf/linformer_k128.yaml \
  "$@"
