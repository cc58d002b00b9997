#!/usr/bin/env bash
# utt2spk_to_spk2utt.sh [utt2spk] > spk2utt
# Inverts utt2spk: one line per speaker, its utterances in the order utt2spk lists them,
# speakers in C-locale order (Kaldi's sorting rule).
set -euo pipefail
if [ $# -gt 1 ]; then echo "usage: $0 [utt2spk] > spk2utt" >&2; exit 1; fi
in="${1:--}"
if [ "$in" != - ] && [ ! -f "$in" ]; then echo "$0: no such file: $in" >&2; exit 1; fi
LC_ALL=C awk -v f="$in" '
  NF != 2 { printf("%s: %s:%d: expected \"<utt-id> <spk-id>\", got \"%s\"\n", "utt2spk_to_spk2utt.sh", f, NR, $0) > "/dev/stderr"; bad = 1; exit 1 }
  { if (!($2 in u)) order[++n] = $2; u[$2] = u[$2] " " $1 }
  END { if (bad) exit 1; for (i = 1; i <= n; i++) print order[i] u[order[i]] }' "$in" | LC_ALL=C sort -k1,1 -s
