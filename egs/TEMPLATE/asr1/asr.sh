#!/usr/bin/env bash
# Shared stage script of every ASR recipe (egs/<corpus>/asr1/asr.sh links here).
# A recipe's run.sh sets the corpus-specific options and passes "$@" last, so any option below
# can be overridden from the command line; --some-option and --some_option are the same.
#
# Stages (what each reads -> writes; every stage sees its finished outputs and skips itself
# unless --force true):
#   1 data preparation  corpus           -> data/<set>/{wav.scp|feats.scp,text,utt2spk,spk2utt} (validated)
#   2 formatting        data/<set>/      -> dump/<set>/ (audio resampled to --fs or features copied;
#                                           utt2num_samples|utt2num_frames; training sets filtered, dropped.log)
#   3 token list        dump/<train>/text -> data/token_list/<token_type>/tokens.txt (+ bpe.model)
#   4 teacher preparation  --teacher_config, tokens.txt -> exp/asr_<config>_<token_type>/init/
#                                           {config.yaml, model.safetensors}: pretrained encoder + new CTC head
#   5 teacher fine-tuning ("Std." run)  init/, dump/ -> exp/asr_<teacher>_<token_type>/{best,final,snapshots/step_N}/
#   6 CALD conversion and training      -> exp/cald_<strategy>_<mixer>_<token_type>/{best,final}/, one per
#                                          --cald_configs entry (students converted with --mixer_config)
#   7 decoding: the teacher's and every student's best/ over --test_sets
#                                       -> exp/<run>/best/<inference_tag>/<set>/{1best_recog/,rtf,failed,logdir/}
#                                          (+ fingerprint: the model and options that made them)
#   8 scoring and report                -> .../<set>/score_wer/{ref.trn,hyp.trn,result.txt}, RESULTS.md
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }
SECONDS=0

stage=1
stop_stage=10000
ngpu=0                # number of GPUs; 0 = CPU
nj=2                  # parallel jobs for data formatting and decoding
force=false           # redo stages whose outputs already exist
skip_data_prep=false  # skip stages 1-3
skip_train=false      # skip stages 4-6
skip_eval=false       # skip stages 7-8

local_data_opts=      # options passed to local/data.sh
train_set=
valid_set=
test_sets=
feats_type=raw        # raw: audio in wav.scp; extracted: features in feats.scp
fs=16000              # sampling rate the model's front end expects (raw only)
min_sec=0.1           # training utterances shorter than this are dropped in stage 2
max_sec=30            # ... and longer than this
token_type=char       # char or bpe
nbpe=30               # BPE vocabulary size (token_type=bpe)
bpe_model_type=unigram
datadir=data
dumpdir=dump
expdir=exp
teacher_config=       # stage 4: the teacher model (YAML)
train_config=         # stage 5: training options of the Std. run (YAML)
student_config=       # stage 6: training options of the CALD runs (YAML)
cald_configs=         # stage 6: strategies (space-separated YAMLs, one student each)
mixer_config=         # stage 6: the linear-time mixer of the students (YAML)
train_args=           # extra --key value overrides for stages 5 and 6, e.g. "--max_steps 100"
inference_config=     # stage 7 config (asr_inference options as YAML)
results_file=RESULTS.md  # stage 8 report

help_message="Usage: $0 [options]
  --stage N --stop_stage M   run stages N..M (1 data prep, 2 format, 3 token list, 4 teacher prep,
                             5 teacher fine-tuning, 6 CALD, 7 decoding, 8 scoring)
  --train_set/--valid_set/--test_sets, --feats_type raw|extracted, --fs, --min_sec, --max_sec,
  --token_type char|bpe, --nbpe N, --ngpu N, --nj N, --force true|false,
  --skip_data_prep/--skip_train/--skip_eval true|false, --teacher_config, --train_config,
  --student_config, --cald_configs \"a.yaml b.yaml\", --mixer_config, --train_args \"--key value\",
  --inference_config, --local_data_opts \"...\""

cmdline="${RECIPE_CMD:-$0 $*}"
. ./utils/parse_options.sh
if [ $# -gt 0 ]; then echo "$0: unexpected argument(s): $*" >&2; echo "$help_message" >&2; exit 1; fi
. ./path.sh
. ./cmd.sh

[ -n "$train_set" ] || { log "error: --train_set is required"; exit 1; }
[ -n "$valid_set" ] || { log "error: --valid_set is required"; exit 1; }
case "$feats_type" in raw|extracted) ;; *) log "error: --feats_type must be raw or extracted, not '$feats_type'"; exit 1;; esac
case "$token_type" in char|bpe) ;; *) log "error: --token_type must be char or bpe, not '$token_type'"; exit 1;; esac

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
all_sets="$train_set $valid_set $test_sets"
token_dir="$datadir/token_list/$token_type"
teacher_tag=$(basename "${teacher_config:-teacher}" .yaml)
teacher_dir="$expdir/asr_${teacher_tag}_${token_type}"

if run_stage 1; then
  log "stage 1: data preparation -> $datadir/{$(echo $all_sets | tr ' ' ,)}"
  need=false
  for s in $all_sets; do [ -f "$datadir/$s/.done" ] || need=true; done
  if [ "$need" = true ] || [ "$force" = true ]; then
    # shellcheck disable=SC2086
    local/data.sh --data_dir "$datadir" $local_data_opts
    for s in $all_sets; do
      utils/validate_data_dir.sh "$datadir/$s"
      touch "$datadir/$s/.done"
    done
  else
    log "stage 1: $datadir/ is complete, skipping (--force true to redo)"
  fi
fi

if run_stage 2; then
  log "stage 2: formatting -> $dumpdir/"
  for s in $all_sets; do
    filter=()
    # only training data is filtered; test sets are decoded as they are
    if [ "$s" = "$train_set" ] || [ "$s" = "$valid_set" ]; then filter=(--filter); fi
    python -m cald_asr.bin.format_data --in_dir "$datadir/$s" --out_dir "$dumpdir/$s" \
      --fs "$fs" --min_sec "$min_sec" --max_sec "$max_sec" --nj "$nj" "${filter[@]}" "${force_opt[@]}"
  done
fi

if run_stage 3; then
  log "stage 3: token list ($token_type) -> $token_dir/"
  bpe_opts=(); [ "$token_type" = bpe ] && bpe_opts=(--nbpe "$nbpe" --bpe_model_type "$bpe_model_type")
  python -m cald_asr.bin.make_token_list --token_type "$token_type" "${bpe_opts[@]}" \
    --text "$dumpdir/$train_set/text" --output_dir "$token_dir" "${force_opt[@]}"
fi

if run_stage 4; then
  log "stage 4: teacher preparation ($teacher_config) -> $teacher_dir/init/"
  [ -n "$teacher_config" ] || { log "error: stage 4 needs --teacher_config"; exit 1; }
  bpe_opts=(); [ "$token_type" = bpe ] && bpe_opts=(--bpemodel "$token_dir/bpe.model")
  python -m cald_asr.bin.prepare_teacher --config "$teacher_config" --token_list "$token_dir/tokens.txt" \
    --token_type "$token_type" "${bpe_opts[@]}" --output_dir "$teacher_dir/init" "${force_opt[@]}"
fi
dist_opts=(); [ "$ngpu" -gt 0 ] && dist_opts=(--ngpu "$ngpu")
if run_stage 5; then
  log "stage 5: teacher fine-tuning ($train_config) -> $teacher_dir/"
  [ -n "$train_config" ] || { log "error: stage 5 needs --train_config"; exit 1; }
  # --resume: a killed run continues from its last checkpoint; a finished one is skipped
  # shellcheck disable=SC2086
  python -m cald_asr.bin.asr_train --config "$train_config" --init_model "$teacher_dir/init" \
    --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" --output_dir "$teacher_dir" \
    --resume "${force_opt[@]}" "${dist_opts[@]}" $train_args
fi

if run_stage 6; then
  [ -n "$student_config" ] && [ -n "$cald_configs" ] && [ -n "$mixer_config" ] || {
    log "error: stage 6 needs --student_config, --cald_configs and --mixer_config"; exit 1; }
  mixer_tag=$(basename "$mixer_config" .yaml)
  for cald_config in $cald_configs; do
    student_dir="$expdir/cald_$(basename "$cald_config" .yaml)_${mixer_tag}_${token_type}"
    log "stage 6: CALD ($cald_config, $mixer_config) -> $student_dir/"
    # shellcheck disable=SC2086
    python -m cald_asr.bin.asr_train --config "$student_config" --cald_config "$cald_config" \
      --mixer_config "$mixer_config" --pretrained_model "$teacher_dir/init" --finetuned_model "$teacher_dir/best" \
      --snapshot_dir "$teacher_dir/snapshots" --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" \
      --output_dir "$student_dir" --resume "${force_opt[@]}" "${dist_opts[@]}" $train_args
  done
fi
inference_tag="decode_$(basename "${inference_config:-default}" .yaml)"
models="$teacher_dir/best"
for cald_config in $cald_configs; do
  models+=" $expdir/cald_$(basename "$cald_config" .yaml)_$(basename "${mixer_config:-none}" .yaml)_${token_type}/best"
done
if [ "$feats_type" = raw ]; then data_name=wav.scp; data_type=sound; else data_name=feats.scp; data_type=kaldi_ark; fi

if run_stage 7; then
  inf_opts=(); [ -n "$inference_config" ] && inf_opts=(--config "$inference_config")
  for model in $models; do
    [ -f "$model/model.safetensors" ] || { log "error: $model/model.safetensors not found (stages 5-6 first)"; exit 1; }
    for s in $test_sets; do
      dec="$model/$inference_tag/$s"
      scp="$dumpdir/$s/$data_name"
      # done = finished after the model, the data and the inference config were written, with this config:
      # a retrained model (stage 5/6 --force), re-dumped data or an edited config is decoded again
      if [ "$force" = false ] && [ -f "$dec/.done" ] && [ "$(cat "$dec/.done")" = "$inference_config" ] \
          && [ "$dec/.done" -nt "$model/model.safetensors" ] && [ "$dec/.done" -nt "$scp" ] \
          && { [ -z "$inference_config" ] || [ "$dec/.done" -nt "$inference_config" ]; }; then
        log "stage 7: $dec is decoded, skipping"; continue
      fi
      log "stage 7: decoding $scp with $model -> $dec/"
      [ "$force" = false ] || rm -rf "$dec"
      # the set's files are rebuilt from the jobs' outputs below: none of an earlier decode may outlive a failure
      rm -rf "$dec/.done" "$dec"/*best_recog "$dec/failed" "$dec/rtf" "$dec/fingerprint"
      n=$(grep -c . "$scp" || true); jobs=$(( nj < n ? nj : n ))
      mkdir -p "$dec/logdir"
      split=(); parts=()
      for j in $(seq "$jobs"); do
        split+=("$dec/logdir/keys.$j.scp"); parts+=("$dec/logdir/output.$j")
        rm -f "$dec/logdir/output.$j/status"
      done
      utils/split_scp.sh "$scp" "${split[@]}"
      # Jobs keep what they decoded (per utterance, in output.N/journal.jsonl, with the model's fingerprint):
      # each also takes the done utterances of every earlier job dir, whatever --nj split them, so a rerun
      # decodes only what is missing. Results of another model or inference config are removed, never reused.
      resume=(); for d in "$dec"/logdir/output.*; do [ -d "$d" ] && resume+=(--resume_from "$d"); done
      # A job exits 1 when some of its utterances failed (listed in its failed file). It writes its status
      # file last, so a job without one crashed or was killed, whatever exit code a scheduler passes on.
      # Parallel jobs share the cores: each gets its share of threads, not all of them.
      OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )) $decode_cmd JOB=1:"$jobs" "$dec/logdir/asr_inference.JOB.log" \
        python -m cald_asr.bin.asr_inference --asr_train_config "$model" "${inf_opts[@]}" \
          --data_path_and_name_and_type "$scp,speech,$data_type" \
          --key_file "$dec/logdir/keys.JOB.scp" --output_dir "$dec/logdir/output.JOB" --ngpu "$ngpu" "${resume[@]}" \
        || true
      crashed=0
      for j in $(seq "$jobs"); do
        [ ! -f "$dec/logdir/output.$j/status" ] || continue
        crashed=$((crashed + 1))
        log "error: stage 7: decoding job $j of $jobs of $s did not finish (it crashed, was killed or could not" \
          "start), see $dec/logdir/asr_inference.$j.log:"
        tail -n 4 "$dec/logdir/asr_inference.$j.log" 2>/dev/null | sed 's/^/    /' || true
      done
      if [ "$crashed" -gt 0 ]; then
        log "error: stage 7: $crashed of $jobs decoding job(s) of $s did not finish; what they decoded is kept:" \
          "rerun the stage to decode the rest"
        exit 1
      fi
      python -m cald_asr.bin.merge_decodes --keys "$scp" --output_dir "$dec" "${parts[@]}"
      # job dirs of an earlier run with more jobs: what they held of this model is in this run's dirs now
      for d in "$dec"/logdir/output.*; do
        j=${d##*.}
        case $j in ''|*[!0-9]*) continue;; esac
        [ "$j" -le "$jobs" ] || rm -rf "$d" "$dec/logdir/keys.$j.scp" "$dec/logdir/asr_inference.$j.log"
      done
      nfailed=$(grep -c . "$dec/failed" || true)
      [ "$nfailed" -eq 0 ] || log "stage 7: $nfailed utterance(s) of $s could not be decoded, listed in $dec/failed"
      echo "$inference_config" > "$dec/.done"
    done
  done
fi

if run_stage 8; then
  log "stage 8: scoring and RESULTS.md"
  python -m cald_asr.bin.make_results --models "$models" --test_sets "$test_sets" --decode_tag "$inference_tag" \
    --data_dir "$dumpdir" --commands "$expdir/commands.txt" --output "$results_file"
fi

log "done in ${SECONDS}s"
