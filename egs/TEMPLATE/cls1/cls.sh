#!/usr/bin/env bash
# Shared stage script of every text-classification recipe (egs/<corpus>/cls1/cls.sh links here); the
# counterpart of egs/TEMPLATE/asr1/asr.sh, with the same stage numbers, options and skip-when-done
# behaviour where they apply. A recipe's run.sh sets the corpus options and passes "$@" last, so any
# option below can be overridden from the command line; --some-option and --some_option are the same.
# What every task's stage script shares (the options of all tasks, stages 1 and 4-8, reruns) is in
# egs/TEMPLATE/lib/stages.sh; this script holds what is text classification's own.
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
# shellcheck source=egs/TEMPLATE/lib/stages.sh
. ../../TEMPLATE/lib/stages.sh  # run from the recipe dir, like ./path.sh

# (--teacher_config is needed from stage 2 on: its tokenizer tokenises the data)
max_length=0          # stage 2: tokens kept per example; 0 = what the teacher's positions allow (512 for BERT)
inference_args="--batch_size 1"  # stage 7: cls_inference options (batch 1 measures time per example)
inference_tag=infer   # stage 7 output dir name under each model

help_message="Usage: $0 [options]
  --stage N --stop_stage M   run stages N..M (1 data prep, 2 tokenisation, 3 label list, 4 teacher prep,
                             5 teacher fine-tuning, 6 CALD, 7 evaluation, 8 report)
  --train_set/--valid_set/--test_sets, --max_length N, --ngpu N, --force true|false,
  --skip_data_prep/--skip_train/--skip_eval true|false, --teacher_config, --train_config,
  --student_config, --cald_configs \"a.yaml b.yaml\", --mixer_config, --train_args \"--key value\",
  --inference_args \"--batch_size 1\", --local_data_opts \"...\", --datadir/--dumpdir/--expdir, --results_file"

parse_stage_options "$@"
[ -n "$teacher_config" ] || { log "error: --teacher_config is required (its tokenizer tokenises the data)"; exit 1; }
record_command

all_sets=$(echo "$train_set $valid_set $test_sets" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
eval_sets=$(echo "$valid_set $test_sets" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
label_list="$datadir/label_list/labels.txt"
name_runs cls ""

check_set() {  # check_set DIR: stage 1 wrote DIR's text and label
  local f
  for f in text label; do
    [ -s "$1/$f" ] || { log "error: local/data.sh wrote no $1/$f"; exit 1; }
  done
}
if run_stage 1; then prepare_data "$all_sets" check_set; fi

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

if run_stage 4; then prepare_teacher --label_list "$label_list"; fi
if run_stage 5; then train_teacher cald_asr.bin.cls_train; fi
if run_stage 6; then train_students cald_asr.bin.cls_train; fi

if run_stage 7 || run_stage 8; then select_models present; fi  # models to evaluate exist by then

# Stage 7 (evaluate_models): a set's results come from its dump and --inference_args.
eval_inputs() { inputs+=("$dumpdir/$2/text"); }

eval_set() {  # eval_set MODEL SET DIR: classifies dump/SET/text with MODEL into DIR
  local model=$1 s=$2 out=$3
  log "stage 7: classifying $dumpdir/$s with $model -> $out/"
  mkdir -p "$out"
  rm -f "$out/status"
  # One job per set, on every core: its timing is the model's time per example. It keeps what it
  # classified (out/journal.jsonl, with the model's fingerprint), so a rerun after a crash does only the
  # rest. It exits 1 when some lines were broken (listed in failed); one without a status file did not
  # finish (job_finished).
  # shellcheck disable=SC2086  # --inference_args "--name value ...": one word each
  $decode_cmd "$out/cls_inference.log" \
    python -m cald_asr.bin.cls_inference --model_dir "$model" --input "$dumpdir/$s/text" \
      --input_format kaldi --output_dir "$out" --ngpu "$ngpu" $inference_args \
    || true
  job_finished "cls_inference of $s" "$out/status" "$out/cls_inference.log" || exit 1
  report_failed "$out" "example(s) of $s could not be classified"
}

if run_stage 7; then evaluate_models "$eval_sets" "$inference_args" "done"; fi
if run_stage 8; then make_report "$eval_sets" --task cls --train_set "$train_set" --valid_set "$valid_set"; fi

log "done in ${SECONDS}s"
