#!/usr/bin/env bash
# run_local.sh [JOB=1:N] <log-file> <command> [args...]
# Runs a command on this machine, like Kaldi's run.pl: with JOB=1:N it starts N copies in
# parallel, replacing the word JOB in the log path and the arguments with 1..N. Output of each
# copy goes to its log (with the command line and exit status); fails if any copy fails and
# names the logs to read.
set -uo pipefail
range=
case "${1:-}" in *=*:*) range="$1"; shift;; esac
if [ $# -lt 2 ]; then echo "usage: $0 [JOB=1:N] <log-file> <command> [args...]" >&2; exit 1; fi
log="$1"; shift
var=JOB; first=1; last=1
if [ -n "$range" ]; then
  var="${range%%=*}"; r="${range#*=}"; first="${r%%:*}"; last="${r#*:}"
  case "$first$last" in *[!0-9]*|'') echo "$0: bad range '$range'" >&2; exit 1;; esac
fi
pids=(); logs=()
for ((j = first; j <= last; j++)); do
  args=()
  for a in "$@"; do args+=("${a//$var/$j}"); done
  l="${log//$var/$j}"
  mkdir -p "$(dirname "$l")"
  {
    echo "# ${args[*]}"; echo "# started at $(date)"
    "${args[@]}"; rc=$?
    echo "# ended (code $rc) at $(date)"
    exit $rc
  } > "$l" 2>&1 &
  pids+=($!); logs+=("$l")
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; rc=$?
  # the code tells a job's own verdict (asr_inference: 1 some utterances failed) from a crash (>1, 128+signal)
  if [ $rc -ne 0 ]; then failed=$((failed + 1)); echo "$0: job failed (exit code $rc), see ${logs[$i]}" >&2; fi
done
if [ $failed -gt 0 ]; then echo "$0: $failed / ${#pids[@]} jobs failed" >&2; exit 1; fi
