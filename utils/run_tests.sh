#!/usr/bin/env bash
# run_tests.sh [pytest args...]
# Sets up whatever is missing (utils/setup_env.sh), then runs the test suite. Whole-recipe runs
# on FSDD/AN4 are marked "recipe" and left out unless asked for: run_tests.sh -m recipe
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/utils/setup_env.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
