#!/usr/bin/env bash
# A recipe for your own corpus: copy this directory to egs/<corpus>/asr1 and follow README.md's checklist.
#   ./run.sh --local_data_opts "--corpus_dir /path/to/corpus"            # stages 1-8
#   ./run.sh --stage 5 --stop_stage 5 --train_args "--max_steps 150"     # one stage, a short run
# Every option of asr.sh (egs/TEMPLATE/asr1/asr.sh and egs/TEMPLATE/lib/stages.sh) can be given here.
set -euo pipefail
export RECIPE_CMD="./run.sh${*:+ $(printf '%q ' "$@")}"
./asr.sh \
  --train_set train_nodev \
  --valid_set train_dev \
  --test_sets "test" \
  --feats_type raw \
  --fs 16000 \
  --max_sec 20 \
  --token_type char \
  --teacher_config conf/teacher_whisper_tiny_en.yaml \
  --train_config conf/train_teacher.yaml \
  --student_config conf/train_student.yaml \
  --cald_configs "../../../conf/cald/target.yaml" \
  --mixer_config ../../../conf/mixer/bimamba2.yaml \
  "$@"
