#!/usr/bin/env bash
# Shared stage script of every text-classification recipe (egs/<corpus>/cls1/cls.sh links here); the
# counterpart of egs/TEMPLATE/asr1/asr.sh, with the same stage numbers, options and skip-when-done
# behaviour where they apply. A recipe's run.sh sets the corpus options and passes "$@" last, so any
# option below can be overridden from the command line; --some-option and --some_option are the same.
#
# Stages (what each reads -> writes; every stage sees its finished outputs and skips itself
# unless --force true):
#   1 data preparation  corpus            -> data/<set>/{text,label} (+ description for a subset)
#   2 tokenisation      data/<set>/       -> dump/<set>/{text,label,token_ids,utt2num_tokens,tokenize.log}:
#                                            the teacher's own tokenizer, cut to --max_length (0: the model's)
#   3 label list        dump/<train>/label -> data/label_list/labels.txt
#   4 teacher preparation  --teacher_config, labels.txt -> exp/cls_<config>/init/{config.yaml,model.safetensors}:
#                                            pretrained encoder + new classification head
#   5 teacher fine-tuning ("Std." run)  init/, dump/ -> exp/cls_<teacher>/{best,final,snapshots/step_N}/
#   6 CALD conversion and training      -> exp/cald_<strategy>_<mixer>/{best,final}/, one per --cald_configs
#                                          entry (students converted with --mixer_config)
#   7 evaluation with cls_inference: the teacher's best/ and every exp/cald_*/best/ present (so students
#     trained by several invocations with different mixers all count), over --valid_set and --test_sets
#                                       -> exp/<run>/best/<inference_tag>/<set>/{label,score,probs,failed,timing,
#                                          status,fingerprint,journal.jsonl}
#   8 scoring and report                -> .../<set>/score_acc/result.json, RESULTS.md (accuracy, macro-F1,
#                                          time per example, parameters, data, environment, commands)
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
SECONDS=0

stage=1
stop_stage=10000
ngpu=0                # number of GPUs; 0 = CPU
force=false           # redo stages whose outputs already exist
skip_data_prep=false  # skip stages 1-3
skip_train=false      # skip stages 4-6
skip_eval=false       # skip stages 7-8

local_data_opts=      # options passed to local/data.sh
train_set=
valid_set=
test_sets=
max_length=0          # stage 2: tokens kept per example; 0 = what the teacher's positions allow (512 for BERT)
datadir=data
dumpdir=dump
expdir=exp
teacher_config=       # stages 2 and 4: the teacher model (YAML); its tokenizer tokenises the data
train_config=         # stage 5: training options of the Std. run (YAML)
student_config=       # stage 6: training options of the CALD runs (YAML)
cald_configs=         # stage 6: strategies (space-separated YAMLs, one student each)
mixer_config=         # stage 6: the linear-time mixer of the students (YAML)
train_args=           # extra --key value overrides for stages 5 and 6, e.g. "--max_steps 100"
inference_args="--batch_size 1"  # stage 7: cls_inference options (batch 1 measures time per example)
inference_tag=infer   # stage 7 output dir name under each model
results_file=RESULTS.md  # stage 8 report

help_message="Usage: $0 [options]
  --stage N --stop_stage M   run stages N..M (1 data prep, 2 tokenisation, 3 label list, 4 teacher prep,
                             5 teacher fine-tuning, 6 CALD, 7 evaluation, 8 report)
  --train_set/--valid_set/--test_sets, --max_length N, --ngpu N, --force true|false,
  --skip_data_prep/--skip_train/--skip_eval true|false, --teacher_config, --train_config,
  --student_config, --cald_configs \"a.yaml b.yaml\", --mixer_config, --train_args \"--key value\",
  --inference_args \"--batch_size 1\", --local_data_opts \"...\", --datadir/--dumpdir/--expdir, --results_file"

cmdline="${RECIPE_CMD:-$0 $*}"
. ./utils/parse_options.sh
if [ $# -gt 0 ]; then echo "$0: unexpected argument(s): $*" >&2; echo "$help_message" >&2; exit 1; fi
. ./path.sh
. ./cmd.sh

[ -n "$train_set" ] || { log "error: --train_set is required"; exit 1; }
[ -n "$valid_set" ] || { log "error: --valid_set is required"; exit 1; }
[ -n "$teacher_config" ] || { log "error: --teacher_config is required (its tokenizer tokenises the data)"; exit 1; }

mkdir -p "$expdir" && echo "$cmdline" >> "$expdir/commands.txt"

run_stage() {  # run_stage N: is stage N inside --stage/--stop_stage and not skipped?
  local n=$1
  [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ] || return 1
  case $n in
    1|2|3) [ "$skip_data_prep" = false ];;
    4|5|6) [ "$skip_train" = false ];;
    7|8) [ "$skip_eval" = false ];;
  esac
}
force_opt=(); [ "$force" = true ] && force_opt=(--force)
all_sets=$(echo "$train_set $valid_set $test_sets" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
eval_sets=$(echo "$valid_set $test_sets" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
label_list="$datadir/label_list/labels.txt"
teacher_tag=$(basename "$teacher_config" .yaml)
teacher_dir="$expdir/cls_${teacher_tag}"

if run_stage 1; then
  log "stage 1: data preparation -> $datadir/{$(echo $all_sets | tr ' ' ,)}"
  need=false
  for s in $all_sets; do [ -f "$datadir/$s/.done" ] || need=true; done
  if [ "$need" = true ] || [ "$force" = true ]; then
    # shellcheck disable=SC2086
    local/data.sh --data_dir "$datadir" $local_data_opts
    for s in $all_sets; do
      for f in text label; do
        [ -s "$datadir/$s/$f" ] || { log "error: local/data.sh wrote no $datadir/$s/$f"; exit 1; }
      done
      touch "$datadir/$s/.done"
    done
  else
    log "stage 1: $datadir/ is complete, skipping (--force true to redo)"
  fi
fi

if run_stage 2; then
  log "stage 2: tokenisation with the tokenizer of $teacher_config -> $dumpdir/"
  for s in $all_sets; do
    python -m cald_asr.bin.cls_tokenize --in_dir "$datadir/$s" --out_dir "$dumpdir/$s" \
      --teacher_config "$teacher_config" --max_length "$max_length" "${force_opt[@]}"
  done
fi

if run_stage 3; then
  log "stage 3: label list -> $label_list"
  mkdir -p "$(dirname "$label_list")"
  LC_ALL=C cut -d' ' -f2 "$dumpdir/$train_set/label" | LC_ALL=C sort -u > "$label_list.tmp"
  [ "$(wc -l < "$label_list.tmp")" -ge 2 ] || { log "error: $dumpdir/$train_set/label has fewer than 2 classes"; exit 1; }
  for s in $eval_sets; do
    unknown=$(LC_ALL=C cut -d' ' -f2 "$dumpdir/$s/label" | LC_ALL=C sort -u | LC_ALL=C comm -23 - "$label_list.tmp" | head -3)
    [ -z "$unknown" ] || { log "error: $dumpdir/$s/label has classes not in $train_set: $unknown"; exit 1; }
  done
  if [ -f "$label_list" ] && cmp -s "$label_list" "$label_list.tmp"; then
    rm "$label_list.tmp"; log "stage 3: $label_list is up to date"
  else
    mv "$label_list.tmp" "$label_list"; log "stage 3: $(paste -sd' ' "$label_list")"
  fi
fi

if run_stage 4; then
  log "stage 4: teacher preparation ($teacher_config) -> $teacher_dir/init/"
  python -m cald_asr.bin.prepare_teacher --config "$teacher_config" --label_list "$label_list" \
    --output_dir "$teacher_dir/init" "${force_opt[@]}"
fi
dist_opts=(); [ "$ngpu" -gt 0 ] && dist_opts=(--ngpu "$ngpu")
if run_stage 5; then
  log "stage 5: teacher fine-tuning ($train_config) -> $teacher_dir/"
  [ -n "$train_config" ] || { log "error: stage 5 needs --train_config"; exit 1; }
  # --resume: a killed run continues from its last checkpoint; a finished one is skipped
  # shellcheck disable=SC2086
  python -m cald_asr.bin.cls_train --config "$train_config" --init_model "$teacher_dir/init" \
    --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" --output_dir "$teacher_dir" \
    --resume "${force_opt[@]}" "${dist_opts[@]}" $train_args
fi

if run_stage 6; then
  [ -n "$student_config" ] && [ -n "$cald_configs" ] && [ -n "$mixer_config" ] || {
    log "error: stage 6 needs --student_config, --cald_configs and --mixer_config"; exit 1; }
  mixer_tag=$(basename "$mixer_config" .yaml)
  for cald_config in $cald_configs; do
    student_dir="$expdir/cald_$(basename "$cald_config" .yaml)_${mixer_tag}"
    log "stage 6: CALD ($cald_config, $mixer_config) -> $student_dir/"
    # shellcheck disable=SC2086
    python -m cald_asr.bin.cls_train --config "$student_config" --cald_config "$cald_config" \
      --mixer_config "$mixer_config" --pretrained_model "$teacher_dir/init" --finetuned_model "$teacher_dir/best" \
      --snapshot_dir "$teacher_dir/snapshots" --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" \
      --output_dir "$student_dir" --resume "${force_opt[@]}" "${dist_opts[@]}" $train_args
  done
fi

models="$teacher_dir/best"
for d in "$expdir"/cald_*/best; do
  [ -f "$d/model.safetensors" ] && models+=" $d"
done

if run_stage 7; then
  for model in $models; do
    [ -f "$model/model.safetensors" ] || { log "error: $model/model.safetensors not found (stages 5-6 first)"; exit 1; }
    for s in $eval_sets; do
      out="$model/$inference_tag/$s"
      # done = finished after the model and the data were written, with these --inference_args: a retrained
      # model (stage 5/6 --force), re-tokenised data or other options are evaluated again
      if [ "$force" = false ] && [ -f "$out/.done" ] && [ "$(cat "$out/.done")" = "$inference_args" ] \
          && [ "$out/.done" -nt "$model/model.safetensors" ] && [ "$out/.done" -nt "$dumpdir/$s/text" ]; then
        log "stage 7: $out is done, skipping"; continue
      fi
      log "stage 7: classifying $dumpdir/$s with $model -> $out/"
      [ "$force" = false ] || rm -rf "$out"
      mkdir -p "$out"
      rm -f "$out/.done" "$out/status"
      # One job per set, on every core: its timing is the model's time per example. It keeps what it
      # classified (out/journal.jsonl, with the model's fingerprint), so a rerun after a crash does only the
      # rest. It exits 1 when some lines were broken (listed in failed) and writes its status file last:
      # without one it crashed or was killed, whatever exit code a scheduler passes on.
      # shellcheck disable=SC2086
      $decode_cmd "$out/cls_inference.log" \
        python -m cald_asr.bin.cls_inference --model_dir "$model" --input "$dumpdir/$s/text" \
          --input_format kaldi --output_dir "$out" --ngpu "$ngpu" $inference_args \
        || true
      if [ ! -f "$out/status" ]; then
        log "error: stage 7: cls_inference of $s did not finish (it crashed, was killed or could not start)," \
          "see $out/cls_inference.log:"
        tail -n 4 "$out/cls_inference.log" 2>/dev/null | sed 's/^/    /' || true
        exit 1
      fi
      nfailed=$(grep -c . "$out/failed" || true)
      [ "$nfailed" -eq 0 ] || log "stage 7: $nfailed example(s) of $s could not be classified, listed in $out/failed"
      echo "$inference_args" > "$out/.done"
    done
  done
fi

if run_stage 8; then
  log "stage 8: scoring and RESULTS.md"
  python -m cald_asr.bin.make_results --task cls --models "$models" --test_sets "$eval_sets" \
    --decode_tag "$inference_tag" --data_dir "$dumpdir" --train_set "$train_set" --valid_set "$valid_set" \
    --commands "$expdir/commands.txt" --output "$results_file"
fi

log "done in ${SECONDS}s"
