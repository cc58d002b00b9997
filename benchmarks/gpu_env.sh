# shellcheck shell=bash
# Sourced by benchmarks/gpu_encoders.sh and benchmarks/gpu_check.sh: the Python packages a bare GPU machine
# of this workplace lacks (it has CUDA torch, triton, numpy, scipy, yaml, safetensors, tqdm, sentencepiece...,
# and no package registry), carried there as wheels.
#
#   gpu_env_fetch     on a machine with PyPI: download them into $WHEELS (benchmarks/out/wheels, ~6 MB)
#   gpu_env_install   on the GPU machine: install what is missing from $WHEELS (or .whl/) into $SITE, put
#                     $SITE and this checkout on PYTHONPATH (nothing else installed), and mamba-ssm's Python
#                     and Triton parts (its compiled extension takes longer to build than a check may run)
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-benchmarks/out/wheels}
SITE=${SITE:-/tmp/cald_gpu_site}
# module:distribution==version (the versions the CPU venv holds); librosa (Whisper's mel filters) and what it
# needs beyond the machine's packages
GPU_ENV_PACKAGES="soundfile:soundfile==0.14.0 cffi:cffi==2.1.1 pycparser:pycparser==3.12 soxr:soxr==1.1.0
kaldiio:kaldiio==2.18.1 jiwer:jiwer==4.0.0 rapidfuzz:rapidfuzz==3.14.6 librosa:librosa==0.11.0
audioread:audioread==3.1.0 decorator:decorator==5.3.1 pooch:pooch==1.9.0 platformdirs:platformdirs==4.14.9"
MAMBA_SSM_VERSION=2.3.2.post1

gpu_env_fetch() {
    local dists=() pair
    for pair in $GPU_ENV_PACKAGES; do dists+=("${pair#*:}"); done
    mkdir -p "$WHEELS"
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" "${dists[@]}"
    # metadata without a build: mamba-ssm's setup.py imports torch and wants nvcc unless told to skip
    MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE $PY -m pip download -q --no-deps --no-build-isolation \
        --no-binary=:all: -d "$WHEELS" "mamba-ssm==$MAMBA_SSM_VERSION"
}

_gpu_env_find_dist() {  # the first file matching $1 in the wheel folders
    local d f
    for d in "$WHEELS" .whl; do
        [ -d "$d" ] || continue
        for f in "$d"/$1; do [ -e "$f" ] && { echo "$f"; return 0; }; done
    done
    return 1
}

gpu_env_install() {
    local pair mod dist whl src
    mkdir -p "$SITE"
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    for pair in $GPU_ENV_PACKAGES; do
        mod=${pair%%:*}
        $PY -c "import $mod" 2>/dev/null && continue
        dist=${pair#*:}
        if whl=$(_gpu_env_find_dist "${dist%%==*}-${dist#*==}-*.whl"); then
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$whl" \
                || echo "could not install $whl"
        else
            echo "$mod: not installed and no wheel in $WHEELS or .whl/"
        fi
    done
    if ! $PY -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('mamba_ssm') else 1)"; then
        src=${MAMBA_SSM_DIST:-$(_gpu_env_find_dist "mamba_ssm-*.tar.gz" || _gpu_env_find_dist "mamba_ssm-*.whl")}
        if [ -n "$src" ]; then
            echo "mamba-ssm from $src (Python and Triton parts only)"
            MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE timeout 180 $PY -m pip install -q --no-index --no-deps \
                --no-build-isolation --no-cache-dir --target "$SITE" "$src" || echo "mamba-ssm: install from $src failed"
        else
            echo "mamba-ssm: no source here; trying PyPI"
            MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE PIP_DEFAULT_TIMEOUT=10 timeout 180 $PY -m pip install -q \
                --retries 0 --no-deps --no-build-isolation --no-cache-dir --target "$SITE" \
                "mamba-ssm==$MAMBA_SSM_VERSION" || echo "mamba-ssm: not reachable on PyPI"
        fi
    fi
}
