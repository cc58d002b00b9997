#!/usr/bin/env bash
# The encoder benchmark (benchmarks/encoders.py) on a CUDA GPU, BiMamba2 students with mamba-ssm's
# kernels and without, plus the kernel parity tests (tests/mixers/test_kernel_parity.py). One
# command, kept under 10 minutes by its own time limits (parity tests 150 s, benchmark 360 s; a
# benchmark cut short keeps the lengths it finished); everything goes to $OUT (default benchmarks/out/gpu):
#
#   bash benchmarks/gpu_encoders.sh [--teacher DIR --students DIR ...] [other benchmarks/encoders.py options]
#
# On a machine with PyPI (the dev machine), first gather what a bare GPU machine lacks:
#
#   bash benchmarks/gpu_encoders.sh --fetch
#
# writes benchmarks/out/wheels/ (mamba-ssm's source and the packages benchmarks/gpu_env.sh names: ~6 MB) and
# benchmarks/out/encoders/audio/ (the FSDD stream, 10 min at 8 kHz: 9.6 MB); carry both to the GPU run.
#
# What this run uses, first found first:
# - Python: $PYTHON, else python3 (the one with CUDA torch); this checkout on PYTHONPATH, nothing installed.
# - Models: the arguments; else the FSDD recipe's exp/ models where present (teacher + BiMamba2 students);
#   else seeded random-weight models of Whisper tiny.en's shapes (--synthetic tiny_en): time and memory
#   do not depend on weight values, WER does. exp/ is not in git: a run in a copy of the repo has it only
#   when carried, and its models (33 + 41 MB each) may not fit the copy's size limit.
# - Audio: --audio-dir; else benchmarks/out/encoders/audio; else the FSDD corpus; else noise bursts.
# - mamba-ssm: as installed; else its source from benchmarks/out/wheels/, .whl/ or $MAMBA_SSM_DIST, else
#   PyPI where reachable, built without its CUDA extension (MAMBA_SKIP_CUDA_BUILD) into /tmp: the Triton
#   SSD kernel BiMamba2 uses needs none (benchmarks/gpu_setup.py). Without mamba-ssm the run goes on with
#   kernels off and says so.
# - Every measurement reads the stream and resamples it with the package (soundfile, soxr); decoding (RTF,
#   WER) also needs kaldiio, jiwer, rapidfuzz: all from the same wheel folders; without the decoding ones the
#   encoder numbers are still measured (--no-decode).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh

if [ "${1:-}" = "--fetch" ]; then
    set -e
    gpu_env_fetch
    $PY -c "
import sys; sys.path.insert(0, 'benchmarks'); import encoders as e; from pathlib import Path
import os
corpus = Path(os.environ.get('CALD_ASR_SHARED_DATA', '../shared/data')) / 'fsdd'
e.ensure_stream(Path('benchmarks/out/encoders/audio'), max(e.DEFAULT_LENGTHS), corpus)"
    du -sh "$WHEELS" benchmarks/out/encoders/audio
    echo "carry: $WHEELS benchmarks/out/encoders/audio (+ model dirs, if they fit)"
    exit 0
fi

OUT=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_encoders.log") 2>&1
export PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to $PY (torch $($PY -c 'import torch; print(torch.__version__)' 2>&1)): nothing to do"
    exit 1
fi

stamp "Python packages"
gpu_env_install
$PY benchmarks/gpu_setup.py check | tee "$OUT/env.json"
mamba=$($PY -c "import json; print(json.load(open('$OUT/env.json'))['mamba_ssm'])" 2>/dev/null || echo absent)
decode_ok=1
$PY -c "import cald_asr.inference, cald_asr.scoring" 2>/dev/null || { decode_ok=0; echo "decoding unavailable here: $($PY -c 'import cald_asr.inference, cald_asr.scoring' 2>&1 | tail -1)"; }

stamp "kernel parity tests"
if [ "${mamba%%:*}" = absent ]; then
    echo "skipped: $mamba" | tee "$OUT/parity.txt"
else
    sel=()
    [ "$mamba" = full ] || sel=(-k "mamba2")  # no compiled selective scan: the Mamba (v1) kernel cannot run
    timeout 150 $PY benchmarks/gpu_setup.py pytest -q -p no:cacheprovider --noconftest \
        tests/mixers/test_kernel_parity.py "${sel[@]}" 2>&1 | tee "$OUT/parity.txt"
    # Triton compiles the SSD kernels on first use (cached on disk for the benchmark after it)
fi

stamp "encoder benchmark"
args=("$@")
have_models=0
for a in "${args[@]}"; do case $a in --teacher|--synthetic) have_models=1;; esac; done
if [ $have_models = 0 ]; then
    exp=egs/fsdd/asr1/exp
    if [ -f $exp/asr_teacher_whisper_tiny_en_char/best/model.safetensors ]; then
        students=()
        for s in $exp/cald_*_char/best; do [ -f "$s/model.safetensors" ] && students+=("$s"); done
        args+=(--teacher $exp/asr_teacher_whisper_tiny_en_char/best --students "${students[@]}")
    else
        echo "no trained FSDD models here: seeded random-weight models of Whisper tiny.en's shapes"
        args+=(--synthetic tiny_en --synthetic-mixers bimamba2)
    fi
fi
have_audio=0
for a in "${args[@]}"; do [ "$a" = --audio-dir ] && have_audio=1; done
if [ $have_audio = 0 ] && [ -f benchmarks/out/encoders/audio/fsdd_test_stream.json ]; then
    args+=(--audio-dir benchmarks/out/encoders/audio)
fi
kernels=both
[ "${mamba%%:*}" = absent ] && kernels=off
extra=(--noise-audio)
[ $decode_ok = 1 ] || extra+=(--no-decode)
timeout 360 $PY benchmarks/gpu_setup.py bench --device cuda --kernels $kernels --budget 1 \
    --out "$OUT" --work-dir /tmp/cald_gpu_work "${extra[@]}" "${args[@]}"
rc=$?
[ $rc = 124 ] && echo "benchmark stopped at its time limit: $OUT/encoders.json holds the lengths it finished"
stamp "done (benchmark exit code $rc)"
ls -la "$OUT"
exit $rc
