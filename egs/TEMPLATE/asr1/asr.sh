#!/usr/bin/env bash
# Shared stage script of every ASR recipe (egs/<corpus>/asr1/asr.sh links here).
# A recipe's run.sh sets the corpus-specific options and passes "$@" last, so any option below
# can be overridden from the command line; --some-option and --some_option are the same.
# What every task's stage script shares (the options of all tasks, stages 1 and 4-8, reruns) is in
# egs/TEMPLATE/lib/stages.sh; this script holds what is ASR's own.
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
# shellcheck source=egs/TEMPLATE/lib/stages.sh
. ../../TEMPLATE/lib/stages.sh  # run from the recipe dir, like ./path.sh

nj=2                  # parallel jobs for data formatting and decoding
feats_type=raw        # raw: audio in wav.scp; extracted: features in feats.scp
fs=16000              # sampling rate the model's front end expects (raw only)
min_sec=0.1           # training utterances shorter than this are dropped in stage 2
max_sec=30            # ... and longer than this
token_type=char       # char or bpe
nbpe=30               # BPE vocabulary size (token_type=bpe)
bpe_model_type=unigram
inference_config=     # stage 7 config (asr_inference options as YAML)

help_message="Usage: $0 [options]
  --stage N --stop_stage M   run stages N..M (1 data prep, 2 format, 3 token list, 4 teacher prep,
                             5 teacher fine-tuning, 6 CALD, 7 decoding, 8 scoring)
  --train_set/--valid_set/--test_sets, --feats_type raw|extracted, --fs, --min_sec, --max_sec,
  --token_type char|bpe, --nbpe N, --ngpu N, --nj N, --force true|false,
  --skip_data_prep/--skip_train/--skip_eval true|false, --teacher_config, --train_config,
  --student_config, --cald_configs \"a.yaml b.yaml\", --mixer_config, --train_args \"--key value\",
  --inference_config, --local_data_opts \"...\""

parse_stage_options "$@"
case "$feats_type" in raw|extracted) ;; *) log "error: --feats_type must be raw or extracted, not '$feats_type'"; exit 1;; esac
case "$token_type" in char|bpe) ;; *) log "error: --token_type must be char or bpe, not '$token_type'"; exit 1;; esac
record_command

all_sets="$train_set $valid_set $test_sets"
token_dir="$datadir/token_list/$token_type"
name_runs asr "_$token_type"

if run_stage 1; then prepare_data "$all_sets" utils/validate_data_dir.sh; fi

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
  bpe_opts=(); [ "$token_type" = bpe ] && bpe_opts=(--bpemodel "$token_dir/bpe.model")
  prepare_teacher --token_list "$token_dir/tokens.txt" --token_type "$token_type" "${bpe_opts[@]}"
fi
if run_stage 5; then train_teacher cald_asr.bin.asr_train; fi
if run_stage 6; then train_students cald_asr.bin.asr_train; fi

inference_tag="decode_$(basename "${inference_config:-default}" .yaml)"
select_models listed
if [ "$feats_type" = raw ]; then data_name=wav.scp; data_type=sound; else data_name=feats.scp; data_type=kaldi_ark; fi

# Stage 7 (evaluate_models): a test set's decode comes from its dump and --inference_config.
eval_inputs() { inputs+=("$dumpdir/$2/$data_name"); [ -z "$inference_config" ] || inputs+=("$inference_config"); }

eval_set() {  # eval_set MODEL SET DIR: decodes dump/SET with MODEL into DIR, split over --nj jobs
  local model=$1 s=$2 dec=$3 scp="$dumpdir/$2/$data_name" n jobs j d split=() parts=() resume=() inf_opts=() crashed=0
  [ -z "$inference_config" ] || inf_opts=(--config "$inference_config")
  log "stage 7: decoding $scp with $model -> $dec/"
  # the set's files are rebuilt from the jobs' outputs below: none of an earlier decode may outlive a failure
  rm -rf "$dec"/*best_recog "$dec/failed" "$dec/rtf" "$dec/fingerprint"
  n=$(grep -c . "$scp" || true); jobs=$(( nj < n ? nj : n ))
  mkdir -p "$dec/logdir"
  for j in $(seq "$jobs"); do
    split+=("$dec/logdir/keys.$j.scp"); parts+=("$dec/logdir/output.$j")
    rm -f "$dec/logdir/output.$j/status"
  done
  utils/split_scp.sh "$scp" "${split[@]}"
  # Jobs keep what they decoded (per utterance, in output.N/journal.jsonl, with the model's fingerprint):
  # each also takes the done utterances of every earlier job dir, whatever --nj split them, so a rerun
  # decodes only what is missing. Results of another model or inference config are removed, never reused.
  for d in "$dec"/logdir/output.*; do if [ -d "$d" ]; then resume+=(--resume_from "$d"); fi; done
  # A job exits 1 when some of its utterances failed (listed in its failed file); one without a status file
  # did not finish (job_finished). Parallel jobs share the cores: each gets its share of threads, not all of them.
  OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )) $decode_cmd JOB=1:"$jobs" "$dec/logdir/asr_inference.JOB.log" \
    python -m cald_asr.bin.asr_inference --asr_train_config "$model" "${inf_opts[@]}" \
      --data_path_and_name_and_type "$scp,speech,$data_type" \
      --key_file "$dec/logdir/keys.JOB.scp" --output_dir "$dec/logdir/output.JOB" --ngpu "$ngpu" "${resume[@]}" \
    || true
  for j in $(seq "$jobs"); do
    job_finished "decoding job $j of $jobs of $s" "$dec/logdir/output.$j/status" "$dec/logdir/asr_inference.$j.log" \
      || crashed=$((crashed + 1))
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
  report_failed "$dec" "utterance(s) of $s could not be decoded"
}

if run_stage 7; then evaluate_models "$test_sets" "$inference_config" decoded; fi
if run_stage 8; then make_report "$test_sets"; fi

log "done in ${SECONDS}s"
