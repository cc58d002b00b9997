#!/usr/bin/env bash
# The prepared GPU check (issue #19): one command, under 5 minutes on one GPU, each part under its own time
# limit, everything it produced under $OUT even when a part is cut short. In order of value:
#   1. the yesno recipe, stages 1-8, --ngpu 1 --amp bf16, the target student (a real GPU training, decoding
#      and scoring)
#   2. FSDD: stage 5 (the Whisper tiny.en teacher) and one stage-6 target BiMamba2 student, 100 steps each,
#      --amp bf16 with DataLoader workers; steps/s, GPU memory peak, data-wait share from their train.log
#   3. the mamba-ssm kernel parity tests (Mamba2, BiMamba2; Mamba v1 only where its compiled kernel is)
#   4. the encoder benchmark (seeded random-weight models of Whisper tiny.en's shapes: time and memory only)
#      with the kernels and without, at 60 s and 10 min of audio
#
#   bash benchmarks/gpu_check.sh --fetch     # on a machine with PyPI and ../shared/data: the carry folders
#   bash benchmarks/gpu_check.sh             # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry_run   # anywhere, on CPU: every part builds and runs one step
#
# --fetch writes benchmarks/out/wheels (benchmarks/gpu_env.sh) and benchmarks/out/carry: the yesno corpus
# (5.8 MB), FSDD recordings of takes 0-19 (the recipe's test, dev and 10 train takes per digit and speaker;
# ~11 MB) and the FSDD teacher's stage-4 init in float16 (15 MB; from $FSDD_INIT, default the recipe's
# exp/asr_teacher_whisper_tiny_en_char/init: run the FSDD recipe's stages 1-4 first). The Whisper package's
# own model.bin (75 MB) would not fit the 64 MiB a device run carries. With the device tool:
#   run(command="OUT=$OUT bash benchmarks/gpu_check.sh", carry=["benchmarks/out/carry", "benchmarks/out/wheels"],
#       timeout_s=420)
# Results: $OUT/gpu_check.log, summary.json (benchmarks/gpu_summary.py), env.json, parity.txt,
# yesno_RESULTS.md, encoders.json, encoders.md; copy the numbers into benchmarks/RESULTS_gpu.md.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh
CARRY=benchmarks/out/carry
SHARED=${CALD_ASR_SHARED_DATA:-$ROOT/../shared/data}

fetch() {
    set -e
    gpu_env_fetch
    mkdir -p "$CARRY/fsdd/recordings" "$CARRY/fsdd_init"
    rm -rf "$CARRY/yesno" && cp -r "$SHARED/yesno" "$CARRY/yesno"
    for f in "$SHARED"/fsdd/recordings/*.wav; do
        take=${f##*_}; take=${take%.wav}
        [ "$take" -lt 20 ] && cp "$f" "$CARRY/fsdd/recordings/"
    done
    local init=${FSDD_INIT:-egs/fsdd/asr1/exp/asr_teacher_whisper_tiny_en_char/init}
    [ -f "$init/model.safetensors" ] || { echo "no $init/model.safetensors: run egs/fsdd/asr1 stages 1-4 first"; exit 1; }
    cp "$init/config.yaml" "$CARRY/fsdd_init/"
    $PY -c "
import sys, torch
from safetensors.torch import load_file, save_file
w = load_file(sys.argv[1])
save_file({k: v.half() if v.is_floating_point() else v for k, v in w.items()}, sys.argv[2])" \
        "$init/model.safetensors" "$CARRY/fsdd_init/model.safetensors"
    du -sh "$WHEELS" "$CARRY"/*
    echo "carry: $CARRY $WHEELS"
}

dry=0
case "${1:-}" in
    --fetch) fetch; exit 0;;
    --dry_run) dry=1;;
    "") ;;
    *) echo "usage: $0 [--fetch|--dry_run]"; exit 2;;
esac

OUT=${OUT:-benchmarks/out/gpu_check}
W=${WORK:-/tmp/cald_gpu_check}
mkdir -p "$OUT" "$W"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }
first() {  # the first of the dirs that exists, as an absolute path
    local d; for d in "$@"; do [ -d "$d" ] && { (cd "$d" && pwd); return 0; }; done; return 1
}

stamp "machine (dry run: $dry)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
if [ $dry = 1 ]; then
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    gpu=(--ngpu 0); steps=1; workers=2; nj=2; device=cpu
    t_yesno=900; t_data=600; t_train=600; t_parity=300; t_bench=300  # 2 CPU cores: minutes per part
else
    gpu_env_install
    if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "no CUDA device visible to $PY: run with --dry_run on CPU"; exit 1
    fi
    gpu=(--ngpu 1); steps=100; workers=4; nj=8; device=cuda
    t_yesno=90; t_data=40; t_train=45; t_parity=35; t_bench=45  # 90 + 2x40 + 2x45 + 35 + 45 s: 5.6 min at most
fi
$PY benchmarks/gpu_setup.py check | tee "$OUT/env.json"
mamba=$($PY -c "import json; print(json.load(open('$OUT/env.json'))['mamba_ssm'])" 2>/dev/null || echo absent)
yesno_corpus=$(first "$CARRY/yesno" "$SHARED/yesno") || echo "no yesno corpus in $CARRY or $SHARED"
fsdd_corpus=$(first "$CARRY/fsdd" "$SHARED/fsdd") || echo "no FSDD corpus in $CARRY or $SHARED"
fsdd_init=$(first "$CARRY/fsdd_init" "${FSDD_INIT:-egs/fsdd/asr1/exp/asr_teacher_whisper_tiny_en_char/init}") \
    || echo "no FSDD stage-4 init (benchmarks/gpu_check.sh --fetch)"
# --max_steps keeps each training to the check's budget; --valid_every past it: one validation, at the end
train_args="--amp bf16 --max_steps $steps --valid_every 100000 --checkpoint_every 100000 --num_workers $workers"

stamp "1. yesno recipe, stages 1-8, ${gpu[*]} --amp bf16"
if [ -n "${yesno_corpus:-}" ]; then
    (cd egs/yesno/asr1 && timeout -k 5 $t_yesno ./run.sh \
        --datadir "$W/yesno/data" --dumpdir "$W/yesno/dump" --expdir "$W/yesno/exp" --nj 2 \
        --local_data_opts "--corpus_dir $yesno_corpus" "${gpu[@]}" --results_file "$W/yesno/RESULTS.md" \
        --cald_configs ../../../conf/cald/target.yaml --noise_snrs "" \
        --train_args "--amp bf16$( [ $dry = 1 ] && echo ' --max_steps 1')")
    echo "yesno exit code $?"
    cp "$W/yesno/RESULTS.md" "$OUT/yesno_RESULTS.md" 2>/dev/null
fi

stamp "2. FSDD stage 5 and a target student, $steps steps each, --amp bf16, $workers workers"
fsdd=(--datadir "$W/fsdd/data" --dumpdir "$W/fsdd/dump" --expdir "$W/fsdd/exp" --nj "$nj" "${gpu[@]}"
      --test_sets test --cald_configs ../../../conf/cald/target.yaml)
if [ -n "${fsdd_corpus:-}" ] && [ -n "${fsdd_init:-}" ]; then
    speakers=(); [ $dry = 1 ] && speakers=(--speakers george)  # one speaker's 600 utterances on CPU
    (cd egs/fsdd/asr1 && . ./path.sh && set -e \
        && timeout -k 5 $t_data $PY -m cald_asr.corpora.fsdd --corpus_dir "$fsdd_corpus" --data_dir "$W/fsdd/data" "${speakers[@]}" \
        && timeout -k 5 $t_data ./run.sh "${fsdd[@]}" --stage 2 --stop_stage 3)
    echo "FSDD data exit code $?"
    teacher=$W/fsdd/exp/asr_teacher_whisper_tiny_en_char
    mkdir -p "$teacher/init" && cp "$fsdd_init"/* "$teacher/init/"
    for stage in 5 6; do
        (cd egs/fsdd/asr1 && timeout -k 5 $t_train ./run.sh "${fsdd[@]}" \
            --stage $stage --stop_stage $stage --train_args "$train_args")
        echo "FSDD stage $stage exit code $?"
    done
fi

stamp "3. kernel parity tests"
if [ "${mamba%%:*}" = absent ]; then
    echo "skipped: $mamba" | tee "$OUT/parity.txt"
else
    sel=(); [ "$mamba" = full ] || sel=(-k "mamba2")  # no compiled selective scan: no Mamba (v1) kernel
    timeout -k 5 $t_parity $PY benchmarks/gpu_setup.py pytest -q -p no:cacheprovider --noconftest \
        tests/mixers/test_kernel_parity.py "${sel[@]}" 2>&1 | tee "$OUT/parity.txt"
fi

stamp "4. encoder benchmark"
kernels=both; [ "${mamba%%:*}" = absent ] && kernels=off
lengths=(60 600); budget=1; [ $dry = 1 ] && { lengths=(5); budget=0.1; kernels=off; }
timeout -k 5 $t_bench $PY benchmarks/gpu_setup.py bench --device $device --kernels $kernels --budget $budget \
    --lengths "${lengths[@]}" --synthetic tiny_en --synthetic-mixers bimamba2 --no-decode \
    --corpus-dir "${fsdd_corpus:-$SHARED/fsdd}" --out "$W/bench" --work-dir "$W/bench_work"
echo "encoder benchmark exit code $?"
cp "$W/bench/encoders.json" "$W/bench/encoders.md" "$OUT/" 2>/dev/null

stamp "summary"
$PY benchmarks/gpu_summary.py --out "$OUT" --encoders "$W/bench/encoders.json" \
    "yesno_teacher=$W/yesno/exp/asr_teacher_tiny_char" \
    "fsdd_teacher=$W/fsdd/exp/asr_teacher_whisper_tiny_en_char" \
    "fsdd_target=$W/fsdd/exp/cald_target_bimamba2_char"
stamp "done"
ls -la "$OUT"
