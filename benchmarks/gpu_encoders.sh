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
# writes benchmarks/out/wheels/ (mamba-ssm's source, soundfile, cffi, pycparser, soxr, kaldiio, jiwer,
# rapidfuzz: 5 MB) and
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
PY=${PYTHON:-python3}
WHEELS=benchmarks/out/wheels

if [ "${1:-}" = "--fetch" ]; then
    set -e
    mkdir -p "$WHEELS"
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" soundfile cffi pycparser soxr kaldiio jiwer rapidfuzz
    # metadata without a build: mamba-ssm's setup.py imports torch and wants nvcc unless told to skip
    MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE $PY -m pip download -q --no-deps --no-build-isolation \
        --no-binary=:all: -d "$WHEELS" mamba-ssm==2.3.2.post1
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
SITE=/tmp/cald_gpu_site
mkdir -p "$SITE"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to $PY (torch $($PY -c 'import torch; print(torch.__version__)' 2>&1)): nothing to do"
    exit 1
fi

stamp "Python packages"
wheel_dirs=()
for d in "$WHEELS" .whl; do [ -d "$d" ] && wheel_dirs+=("$d"); done
find_dist() {  # the first file matching $1 in the wheel folders
    local d f
    for d in "${wheel_dirs[@]}"; do for f in "$d"/$1; do [ -e "$f" ] && { echo "$f"; return 0; }; done; done
    return 1
}
for mod in soundfile soxr kaldiio cffi pycparser jiwer rapidfuzz; do
    if ! $PY -c "import $mod" 2>/dev/null; then
        if whl=$(find_dist "$mod-*.whl"); then
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$whl" \
                || echo "could not install $whl"
        else
            echo "$mod: not installed and no wheel in ${wheel_dirs[*]:-(no wheel folder)}"
        fi
    fi
done

if ! $PY -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('mamba_ssm') else 1)"; then
    src=${MAMBA_SSM_DIST:-$(find_dist "mamba_ssm-*.tar.gz" || find_dist "mamba_ssm-*.whl")}
    export MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE
    if [ -n "$src" ]; then
        echo "mamba-ssm from $src (Python and Triton parts only)"
        timeout 180 $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" "$src" \
            || echo "mamba-ssm: install from $src failed"
    else
        echo "mamba-ssm: no source here; trying PyPI"
        PIP_DEFAULT_TIMEOUT=10 timeout 180 $PY -m pip install -q --retries 0 --no-deps --no-build-isolation \
            --no-cache-dir --target "$SITE" mamba-ssm==2.3.2.post1 || echo "mamba-ssm: not reachable on PyPI"
    fi
    unset MAMBA_SKIP_CUDA_BUILD MAMBA_FORCE_BUILD
fi
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
