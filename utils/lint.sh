#!/usr/bin/env bash
# lint.sh: the style checks CI runs (after utils/setup_env.sh): ruff's linter and formatter over the Python
# tree (ruff.toml), shellcheck over every shell script of the recipes and utils/. `utils/lint.sh --fix`
# applies ruff's fixes and formatting instead of only reporting.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin="$root/.venv/bin"
if [ "${1:-}" = --fix ]; then
  "$bin/ruff" check --fix .
  "$bin/ruff" format .
else
  "$bin/ruff" check .
  "$bin/ruff" format --check .
fi
find egs utils -name '*.sh' -type f -print0 | xargs -0 "$bin/shellcheck" -x
echo "lint: ruff and shellcheck passed"
