# shellcheck shell=bash
# Sourced by the stage scripts (asr.sh, cls.sh) and local/data.sh: puts the project's virtualenv and utils/
# on the path.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export MAIN_ROOT
if [ -f "$MAIN_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$MAIN_ROOT/.venv/bin/activate"
fi
export PATH="$MAIN_ROOT/utils:$PATH"
export PYTHONUNBUFFERED=1
# Use the cores we have, not one thread per core of a shared node per job.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
