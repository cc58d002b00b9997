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
#                       with --speed_perturb_factors "0.9 1.0 1.1": data/<train>/ -> dump/<train>_sp/, a copy
#                                           per factor with ids sp<factor>-<id> (ESPnet's <train>_sp), which
#                                           stages 3-6 read; token list and exp dirs then end in _sp
#   3 token list        dump/<train>/text -> data/token_list/<token_type>/tokens.txt (+ bpe.model)
#   4 teacher preparation  --teacher_config, tokens.txt -> exp/asr_<config>_<token_type>/init/
#                                           {config.yaml, model.safetensors}: pretrained encoder + new CTC head
#   5 teacher fine-tuning ("Std." run)  init/, dump/ -> exp/asr_<teacher>_<token_type>/{best,final,snapshots/step_N}/
#   6 CALD conversion and training      -> exp/cald_<strategy>_<mixer>_<token_type>/{best,final}/, one per
#                                          --cald_configs entry (students converted with --mixer_config)
#                       with --unlabeled_set U (audio only): first task-agnostic CALD on dump/U (the layer loss
#                                          against the pretrained teacher) -> exp/cald_unlabeled_<mixer>_U_<token_type>/,
#                                          whose mixers the students start from: exp/cald_<strategy>_<mixer>_from_U_...
#   7 decoding: the teacher's and every student's best/ over --test_sets
#                                       -> exp/<run>/best/<inference_tag>/<set>/{1best_recog/,rtf,failed,logdir/}
#                                          (+ fingerprint: the model and options that made them)
#                       first, for robustness: dump/<set>/ -> dump/<set>_snr<k>/ for each --robust_test_sets set
#                                          and --noise_snrs SNR k (white noise, seeded), decoded like the rest
#   8 scoring and report                -> .../<set>/score_wer/{ref.trn,hyp.trn,result.txt}, RESULTS.md
#                                          (+ robustness tables: WER at each SNR, 95 % bootstrap intervals)
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
speed_perturb_factors=  # stage 2: e.g. "0.9 1.0 1.1": train on <train>_sp, a copy per factor (empty: none)
noise_snrs="20 10 5"  # stages 7-8: SNRs (dB) of the white-noise copies of --robust_test_sets (empty: none)
robust_test_sets=     # stages 7-8: the test sets evaluated under noise (default: the first of --test_sets)
unlabeled_set=        # stages 1, 2, 6: a data dir of audio alone (data/<set>/wav.scp, no text) for task-agnostic CALD
unlabeled_config=../../../conf/cald/unlabeled.yaml  # stage 6: that phase's strategy and task

help_message="Usage: $0 [options]
  --stage N --stop_stage M   run stages N..M (1 data prep, 2 format, 3 token list, 4 teacher prep,
                             5 teacher fine-tuning, 6 CALD, 7 decoding, 8 scoring)
  --train_set/--valid_set/--test_sets, --feats_type raw|extracted, --fs, --min_sec, --max_sec,
  --token_type char|bpe, --nbpe N, --ngpu N, --nj N, --force true|false,
  --skip_data_prep/--skip_train/--skip_eval true|false, --teacher_config, --train_config,
  --student_config, --cald_configs \"a.yaml b.yaml\", --mixer_config, --train_args \"--key value\",
  --inference_config, --local_data_opts \"...\", --speed_perturb_factors \"0.9 1.0 1.1\",
  --noise_snrs \"20 10 5\" (\"\": no robustness evaluation), --robust_test_sets \"set ...\",
  --unlabeled_set SET (audio without transcripts: task-agnostic CALD before the students), --unlabeled_config"

# check_audio_options: speed perturbation and noisy test sets change the audio, so they need --feats_type raw;
# --robust_test_sets (default: the first test set) must be test sets, which stage 2 formats. Sets noisy_sets,
# the names stage 7 gives the noisy copies: <set>_snr<k>, k as written in --noise_snrs.
check_audio_options() {
  local s k first
  if [ "$feats_type" = extracted ] && [ -n "$speed_perturb_factors" ]; then
    log "error: --speed_perturb_factors needs --feats_type raw (it perturbs the audio)"; exit 1
  fi
  if [ "$feats_type" = extracted ] && [ -n "$noise_snrs" ]; then
    log "error: --noise_snrs needs --feats_type raw (noise is mixed into the audio); --noise_snrs \"\" turns it" \
      "off"
    exit 1
  fi
  read -ra first <<< "$test_sets"
  [ -n "$robust_test_sets" ] || robust_test_sets=${first[0]:-}
  for s in $robust_test_sets; do
    case " $test_sets " in
      *" $s "*) ;;
      *) log "error: --robust_test_sets: '$s' is not one of --test_sets ($test_sets)"; exit 1;;
    esac
  done
  noisy_sets=
  for s in $robust_test_sets; do for k in $noise_snrs; do noisy_sets+=" ${s}_snr$k"; done; done
}

parse_stage_options "$@"
case "$feats_type" in raw|extracted) ;; *) log "error: --feats_type must be raw or extracted, not '$feats_type'"; exit 1;; esac
case "$token_type" in char|bpe) ;; *) log "error: --token_type must be char or bpe, not '$token_type'"; exit 1;; esac
check_audio_options
record_command

all_sets="$train_set $valid_set $test_sets"
# ESPnet's naming: with speed perturbation the training set, its token list and the runs end in _sp
sp=; [ -z "$speed_perturb_factors" ] || sp=_sp
token_dir="$datadir/token_list/$token_type$sp"
name_runs asr "_$token_type$sp"

if run_stage 1; then
  prepare_data "$all_sets" utils/validate_data_dir.sh
  if [ -n "$unlabeled_set" ]; then  # written by local/data.sh or by hand: a wav.scp (utt2spk, spk2utt optional)
    [ -f "$datadir/$unlabeled_set/wav.scp" ] || {
      log "error: --unlabeled_set $unlabeled_set: no $datadir/$unlabeled_set/wav.scp (a data dir of audio, text not needed)"
      exit 1; }
    utils/validate_data_dir.sh --no_text "$datadir/$unlabeled_set"
  fi
fi

if run_stage 2; then
  log "stage 2: formatting -> $dumpdir/"
  for s in $all_sets; do
    filter=(); out=$s; perturb=()
    # only training data is filtered; test sets are decoded as they are
    if [ "$s" = "$train_set" ] || [ "$s" = "$valid_set" ]; then filter=(--filter); fi
    if [ "$s" = "$train_set" ] && [ -n "$sp" ]; then
      out=$s$sp; perturb=(--speed_perturb_factors "$speed_perturb_factors")
      log "stage 2: speed perturbation ($speed_perturb_factors): $datadir/$s -> $dumpdir/$out/"
    fi
    OMP_NUM_THREADS=$(job_threads "$nj") python -m cald_asr.bin.format_data --in_dir "$datadir/$s" --out_dir "$dumpdir/$out" --fs "$fs" \
      --min_sec "$min_sec" --max_sec "$max_sec" --nj "$nj" "${filter[@]}" "${perturb[@]}" "${force_opt[@]}"
  done
  if [ -n "$unlabeled_set" ]; then
    OMP_NUM_THREADS=$(job_threads "$nj") python -m cald_asr.bin.format_data --no_text --in_dir "$datadir/$unlabeled_set" --out_dir "$dumpdir/$unlabeled_set" \
      --fs "$fs" --min_sec "$min_sec" --max_sec "$max_sec" --nj "$nj" --filter "${force_opt[@]}"
  fi
fi
train_set+=$sp  # stages 3-6 train on the perturbed copies

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
if [ -n "$unlabeled_set" ]; then
  unlabeled_dir="$expdir/cald_unlabeled_$(basename "$mixer_config" .yaml)_$unlabeled_set$run_suffix"
  student_args=(--init_mixers "$unlabeled_dir/best")
  student_tag="_from_$unlabeled_set"
fi

distill_unlabeled() {  # stage 6, first: task-agnostic CALD on the unlabeled set against the pretrained teacher
  log "stage 6: task-agnostic CALD ($unlabeled_config) on $dumpdir/$unlabeled_set -> $unlabeled_dir/"
  # shellcheck disable=SC2086  # --train_args "--key value ...": one word each
  python -m cald_asr.bin.asr_train --config "$student_config" --cald_config "$unlabeled_config" \
    --mixer_config "$mixer_config" --pretrained_model "$teacher_dir/init" --finetuned_model "$teacher_dir/init" \
    --train_data "$dumpdir/$unlabeled_set" --valid_data "$dumpdir/$valid_set" --output_dir "$unlabeled_dir" \
    --resume "${force_opt[@]}" "${dist_opts[@]}" $train_args
}
if run_stage 6; then
  if [ -n "$unlabeled_set" ]; then distill_unlabeled; fi
  train_students cald_asr.bin.asr_train
fi

inference_tag="decode_$(basename "${inference_config:-default}" .yaml)"
if run_stage 7 || run_stage 8; then select_models listed; fi  # models to evaluate exist by then
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
  OMP_NUM_THREADS=$(job_threads "$jobs") $decode_cmd JOB=1:"$jobs" "$dec/logdir/asr_inference.JOB.log" \
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

make_noisy_sets() {  # stage 7, first: dump/<set>_snr<k>/ of each --robust_test_sets set at each --noise_snrs k
  local s snrs
  [ -n "$noisy_sets" ] || return 0
  read -ra snrs <<< "$noise_snrs"
  for s in $robust_test_sets; do
    log "stage 7: white noise at SNR $noise_snrs dB: $dumpdir/$s -> $dumpdir/${s}_snr{$(IFS=,; echo "${snrs[*]}")}/"
    python -m cald_asr.bin.make_noisy_set --in_dir "$dumpdir/$s" --snr_db "$noise_snrs" "${force_opt[@]}"
  done
}

if run_stage 7; then
  make_noisy_sets
  evaluate_models "$test_sets $noisy_sets" "$inference_config" decoded
fi
if run_stage 8; then make_report "$test_sets" --robust_sets "$robust_test_sets" --noise_snrs "$noise_snrs"; fi

log "done in ${SECONDS}s"
