# shellcheck shell=bash
# The stage library: what the stage script of every task (egs/TEMPLATE/asr1/asr.sh, egs/TEMPLATE/cls1/cls.sh)
# shares, so that each of them holds only its own options and what its stages do differently.
# A stage script, run from its recipe dir, sources this file first (it defines the options every task has),
# then defines its own options and help_message and calls
#   parse_stage_options "$@"   the command line, path.sh, cmd.sh, --train_set/--valid_set
#   record_command             after its own checks: exp/commands.txt, which RESULTS.md quotes
#   name_runs TASK SUFFIX      teacher_dir=exp/<TASK>_<teacher config><SUFFIX>; students: see student_dir
# and runs its stages with run_stage N and the stage functions below.
set -euo pipefail

# "(<file>:<line>)" is where the message comes from: the stage script or this library
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
SECONDS=0

# Options of every task. Nothing else is defined before parse_stage_options: the parser accepts exactly
# the variables defined when it runs, so a derived one (teacher_dir, models) cannot be set by mistake.
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
# shellcheck disable=SC2034  # read by the stage scripts
test_sets=
datadir=data
dumpdir=dump
expdir=exp
teacher_config=       # stage 4: the teacher model (YAML)
train_config=         # stage 5: training options of the Std. run (YAML)
student_config=       # stage 6: training options of the CALD runs (YAML)
cald_configs=         # stage 6: strategies (space-separated YAMLs, one student each)
mixer_config=         # stage 6: the linear-time mixer of the students (YAML)
train_args=           # extra --key value overrides for stages 5 and 6, e.g. "--max_steps 100"
num_threads=          # CPU threads of every stage: asr_train's --num_threads (unless --train_args sets it), shared
                      # among the --nj jobs of stages 2 and 7 (empty: $OMP_NUM_THREADS, else nproc, as path.sh sets)
inference_model=best  # stages 7-8: which model of each run is evaluated: best (by dev metric), final or ave_N
                      # (the mean of the N best validations' models, with average_checkpoints: N in training)
eval_models=all       # stages 7-8: teacher, students or all
results_file=RESULTS.md  # stage 8 report

# parse_stage_options "$@": sets the options defined so far from the command line (utils/parse_options.sh),
# sources the recipe's path.sh and cmd.sh and checks what every task needs.
parse_stage_options() {
  cmdline="${RECIPE_CMD:-$0 $*}"
  . ./utils/parse_options.sh
  if [ $# -gt 0 ]; then echo "$0: unexpected argument(s): $*" >&2; echo "$help_message" >&2; exit 1; fi
  # shellcheck source=egs/TEMPLATE/asr1/path.sh
  . ./path.sh
  # shellcheck source=egs/TEMPLATE/asr1/cmd.sh
  . ./cmd.sh
  [ -n "$train_set" ] || { log "error: --train_set is required"; exit 1; }
  [ -n "$valid_set" ] || { log "error: --valid_set is required"; exit 1; }
  force_opt=(); if [ "$force" = true ]; then force_opt=(--force); fi
  dist_opts=(); if [ "$ngpu" -gt 0 ]; then dist_opts=(--ngpu "$ngpu"); fi
  case $inference_model in best|final|ave_[1-9]|ave_[1-9][0-9]) ;; *)
    log "error: --inference_model must be best, final or ave_N, not '$inference_model'"; exit 1;; esac
  case $eval_models in teacher|students|all) ;; *)
    log "error: --eval_models must be teacher, students or all, not '$eval_models'"; exit 1;; esac
  # --num_threads N: every program of every stage uses N threads (OMP_NUM_THREADS, torch's default), the trainer
  # is told so (a training config's num_threads would win over the environment), parallel jobs share them
  thread_opts=()
  if [ -n "$num_threads" ]; then
    case $num_threads in *[!0-9]*|0*) log "error: --num_threads must be a positive integer, not '$num_threads'"; exit 1;; esac
    export OMP_NUM_THREADS=$num_threads
    case " $train_args " in *" --num_threads "*|*" --num-threads "*) ;; *) thread_opts=(--num_threads "$num_threads");; esac
  fi
}

# job_threads JOBS: the threads each of JOBS parallel jobs gets, its share of $OMP_NUM_THREADS (--num_threads, else
# the user's, else nproc: path.sh), at least 1, so that parallel jobs share the cores instead of each taking all.
job_threads() { local n=$(( ${OMP_NUM_THREADS:-$(nproc)} / $1 )); echo $(( n > 0 ? n : 1 )); }

# record_command: appends the command line to exp/commands.txt; called after the task's own checks, so that
# a refused command is not recorded.
record_command() { mkdir -p "$expdir" && echo "$cmdline" >> "$expdir/commands.txt"; }

run_stage() {  # run_stage N: is stage N inside --stage/--stop_stage and not skipped?
  local n=$1
  [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ] || return 1
  case $n in
    1|2|3) [ "$skip_data_prep" = false ];;
    4|5|6) [ "$skip_train" = false ];;
    7|8) [ "$skip_eval" = false ];;
  esac
}

# name_runs TASK SUFFIX: experiment dirs are named after their configs: the teacher's
# exp/<TASK>_<teacher config><SUFFIX>, each student's exp/cald_<strategy>_<mixer><SUFFIX> (student_dir).
name_runs() {
  teacher_dir="$expdir/$1_$(basename "${teacher_config:-teacher}" .yaml)$2"
  run_suffix=$2
}

student_dir() {  # student_dir CALD_CONFIG: where stage 6 trains the student of that strategy and --mixer_config
  # (student_tag: what the stage script says the students start from besides, e.g. asr's _from_<unlabeled set>)
  echo "$expdir/cald_$(basename "$1" .yaml)_$(basename "${mixer_config:-none}" .yaml)${student_tag:-}$run_suffix"
}

# prepare_data SETS CHECK...: stage 1. local/data.sh writes data/<set>/ for every set of SETS unless each
# has its .done (or --force true); then CHECK runs on each set's dir (e.g. utils/validate_data_dir.sh).
prepare_data() {
  local set_list s need=false
  read -ra set_list <<< "$1"; shift
  log "stage 1: data preparation -> $datadir/{$(IFS=,; echo "${set_list[*]}")}"
  for s in "${set_list[@]}"; do [ -f "$datadir/$s/.done" ] || need=true; done
  if [ "$need" = false ] && [ "$force" = false ]; then
    log "stage 1: $datadir/ is complete, skipping (--force true to redo)"
    return
  fi
  # shellcheck disable=SC2086  # --local_data_opts "--name value ...": one word each
  local/data.sh --data_dir "$datadir" $local_data_opts
  for s in "${set_list[@]}"; do
    "$@" "$datadir/$s"
    touch "$datadir/$s/.done"
  done
}

# prepare_teacher OPTION...: stage 4, the pretrained model of --teacher_config with a new, seeded head into
# the teacher's init/; OPTION...: what prepare_teacher needs of the task (its token list or label list).
prepare_teacher() {
  log "stage 4: teacher preparation ($teacher_config) -> $teacher_dir/init/"
  [ -n "$teacher_config" ] || { log "error: stage 4 needs --teacher_config"; exit 1; }
  python -m cald_asr.bin.prepare_teacher --config "$teacher_config" "$@" --output_dir "$teacher_dir/init" \
    "${force_opt[@]}"
}

# train_teacher TRAINER: stage 5, the teacher's Std. run with python -m TRAINER (asr_train, cls_train).
# --resume: a killed run continues from its last checkpoint; a finished one is skipped.
train_teacher() {
  log "stage 5: teacher fine-tuning ($train_config) -> $teacher_dir/"
  [ -n "$train_config" ] || { log "error: stage 5 needs --train_config"; exit 1; }
  # shellcheck disable=SC2086  # --train_args "--key value ...": one word each
  python -m "$1" --config "$train_config" --init_model "$teacher_dir/init" \
    --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" --output_dir "$teacher_dir" \
    --resume "${force_opt[@]}" "${dist_opts[@]}" "${thread_opts[@]}" $train_args
}

# train_students TRAINER: stage 6, one student per --cald_configs strategy, converted with --mixer_config
# from the teacher's init/ and trained (guided by its fine-tuned best/ and snapshots) with python -m TRAINER;
# student_args (set by the stage script, e.g. asr's --init_mixers) go to every student.
# --cald_configs "": no students (the teacher alone).
train_students() {
  local cald_config dir
  if [ -z "$cald_configs" ]; then log "stage 6: --cald_configs is empty: no students to train"; return; fi
  [ -n "$student_config" ] && [ -n "$mixer_config" ] || {
    log "error: stage 6 needs --student_config, --cald_configs and --mixer_config"; exit 1; }
  for cald_config in $cald_configs; do
    dir=$(student_dir "$cald_config")
    log "stage 6: CALD ($cald_config, $mixer_config) -> $dir/"
    # shellcheck disable=SC2086,SC2154  # --train_args "--key value ...": one word each; student_args: the script's
    python -m "$1" --config "$student_config" --cald_config "$cald_config" \
      --mixer_config "$mixer_config" --pretrained_model "$teacher_dir/init" --finetuned_model "$teacher_dir/best" \
      --snapshot_dir "$teacher_dir/snapshots" --train_data "$dumpdir/$train_set" --valid_data "$dumpdir/$valid_set" \
      --output_dir "$dir" --resume "${force_opt[@]}" "${dist_opts[@]}" ${student_args[@]+"${student_args[@]}"} \
      "${thread_opts[@]}" $train_args
  done
}

# select_models listed|present: sets $models, what stages 7 and 8 evaluate (--eval_models teacher|students|all),
# each run's --inference_model checkpoint (<run>/best, <run>/final or <run>/ave_N): the teacher's (missing, it is an error:
# stage 5 makes it), then the students':
#   listed   the student of each --cald_configs strategy with --mixer_config; one without that checkpoint (stage
#            6 has not trained it) is skipped with a warning;
#   present  every exp/cald_*/<checkpoint>/ holding a model, so students trained by several invocations with other
#            mixers all count.
select_models() {
  local cald_config d
  models=
  if [ "$eval_models" != students ]; then
    models="$teacher_dir/$inference_model"
    [ -f "$models/model.safetensors" ] || {
      log "error: $models/model.safetensors not found: the teacher is trained in stage 5 (--eval_models students" \
        "evaluates the students alone)"
      exit 1; }
  fi
  [ "$eval_models" != teacher ] || return 0
  case $1 in
    listed)
      for cald_config in $cald_configs; do
        d="$(student_dir "$cald_config")/$inference_model"
        if [ -f "$d/model.safetensors" ]; then models+=" $d"; continue; fi
        log "warning: no $d/model.safetensors (stage 6 trains the student of $cald_config): not evaluated;" \
          "--eval_models teacher evaluates the teacher alone"
      done;;
    present) for d in "$expdir"/cald_*/"$inference_model"; do if [ -f "$d/model.safetensors" ]; then models+=" $d"; fi; done;;
    *) log "error: select_models listed|present, not '$1'"; exit 1;;
  esac
  models=${models# }
  [ -n "$models" ] || { log "error: --eval_models $eval_models: no student has a $inference_model/ model to evaluate"; exit 1; }
}

# evaluate_models SETS STAMP WORD: stage 7, every model of $models on each set of SETS, into
# <model>/$inference_tag/<set>/. The task defines how, in two functions:
#   eval_inputs MODEL SET     adds to the array `inputs` the files, besides the model, the results come from
#   eval_set MODEL SET DIR    runs the job(s) into DIR; exits, naming them, when one did not finish
# A set is done when its .done holds STAMP (what else the results depend on: asr's --inference_config,
# cls's --inference_args) and is newer than the model and every input: a retrained model (stage 5/6 --force),
# re-dumped data or an edited config is evaluated again; "stage 7: <dir> is WORD, skipping" otherwise.
# --force true starts a set from scratch.
evaluate_models() {
  local sets=$1 stamp=$2 word=$3 model s dir inputs
  for model in $models; do
    [ -f "$model/model.safetensors" ] || { log "error: $model/model.safetensors not found (stages 5-6 first)"; exit 1; }
    for s in $sets; do
      # shellcheck disable=SC2154  # inference_tag is the stage script's (asr: from --inference_config)
      dir="$model/$inference_tag/$s"
      inputs=("$model/model.safetensors")
      eval_inputs "$model" "$s"
      if [ "$force" = false ] && up_to_date "$dir/.done" "$stamp" "${inputs[@]}"; then
        log "stage 7: $dir is $word, skipping"
        continue
      fi
      [ "$force" = false ] || rm -rf "$dir"
      rm -f "$dir/.done"  # not done until the jobs of this run finished
      eval_set "$model" "$s" "$dir"
      echo "$stamp" > "$dir/.done"
    done
  done
}

up_to_date() {  # up_to_date FILE CONTENT INPUT...: FILE holds CONTENT and is newer than every INPUT
  local file=$1 content=$2 input
  shift 2
  [ -f "$file" ] && [ "$(cat "$file")" = "$content" ] || return 1
  for input in "$@"; do [ "$file" -nt "$input" ] || return 1; done
}

# job_finished WHAT STATUS LOG: a stage-7 job writes its STATUS file last, so a job without one crashed or
# was killed, whatever exit code a scheduler passes on: then this says so, quoting the end of its LOG, and fails.
job_finished() {
  [ ! -f "$2" ] || return 0
  log "error: stage 7: $1 did not finish (it crashed, was killed or could not start), see $3:"
  tail -n 4 "$3" 2>/dev/null | sed 's/^/    /' || true
  return 1
}

report_failed() {  # report_failed DIR WHAT: "stage 7: N WHAT, listed in DIR/failed" when DIR/failed lists any
  local n
  n=$(grep -c . "$1/failed" || true)
  [ "$n" -eq 0 ] || log "stage 7: $n $2, listed in $1/failed"
}

# make_report SETS OPTION...: stage 8, make_results scores the results of $models on SETS into --results_file,
# quoting exp/commands.txt; OPTION...: the task's own (cls: --task cls and its sets).
make_report() {
  local sets=$1
  shift
  log "stage 8: scoring and RESULTS.md"
  # shellcheck disable=SC2154  # inference_tag is the stage script's (asr: from --inference_config)
  python -m cald_asr.bin.make_results "$@" --models "$models" --test_sets "$sets" --decode_tag "$inference_tag" \
    --data_dir "$dumpdir" --commands "$expdir/commands.txt" --output "$results_file"
}
