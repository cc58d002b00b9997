# shellcheck shell=bash
# How jobs run. Local machine by default; for a cluster, point these at your scheduler wrapper
# (same interface as utils/run_local.sh: [JOB=1:N] <log> <command...>).
export train_cmd="utils/run_local.sh"
export decode_cmd="utils/run_local.sh"
