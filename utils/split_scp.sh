#!/usr/bin/env bash
# split_scp.sh [--utt2spk FILE] in.scp out.1 out.2 ... out.N
# Splits a Kaldi scp (or any keyed list) into N contiguous parts of near-equal line count, the
# way parallel jobs (--nj) consume it. With --utt2spk, a speaker's utterances never straddle two
# parts (per-speaker processing stays within one job); then balance is by speaker.
set -euo pipefail
utt2spk=
if [ "${1:-}" = --utt2spk ]; then utt2spk="$2"; shift 2; fi
if [ $# -lt 2 ]; then echo "usage: $0 [--utt2spk FILE] in.scp out.1 [out.2 ...]" >&2; exit 1; fi
in="$1"; shift
[ -f "$in" ] || { echo "$0: no such file: $in" >&2; exit 1; }
n=$#
lines=$(grep -c . "$in" || true)
if [ "$lines" -lt "$n" ]; then
  echo "$0: $in has $lines lines, cannot split into $n non-empty parts" >&2; exit 1
fi
outs=("$@")
for o in "${outs[@]}"; do mkdir -p "$(dirname "$o")"; done
if [ -z "$utt2spk" ]; then
  # part i gets lines (i*L/N, (i+1)*L/N]: sizes differ by at most one
  awk -v n="$n" -v L="$lines" -v outs="${outs[*]}" '
    BEGIN { split(outs, o, " ") }
    NF { k++; p = int((k - 1) * n / L) + 1; print > o[p] }' "$in"
else
  [ -f "$utt2spk" ] || { echo "$0: no such file: $utt2spk" >&2; exit 1; }
  nspk=$(awk -v f="$utt2spk" 'BEGIN{while((getline l < f)>0){split(l,a," "); s[a[2]]=1}; for(k in s)c++; print c+0}')
  if [ "$nspk" -lt "$n" ]; then echo "$0: only $nspk speakers in $utt2spk, cannot split into $n parts" >&2; exit 1; fi
  awk -v n="$n" -v outs="${outs[*]}" -v f="$utt2spk" -v S="$nspk" -v scp="$in" '
    BEGIN { split(outs, o, " ")
            while ((getline l < f) > 0) { split(l, a, " "); spk[a[1]] = a[2] } }
    NF { s = spk[$1]
         if (s == "") { printf("split_scp.sh: %s:%d: utterance %s is not in utt2spk\n", scp, FNR, $1) > "/dev/stderr"; exit 1 }
         if (!(s in idx)) idx[s] = m++
         print > o[int(idx[s] * n / S) + 1] }' "$in"
fi
# an empty part would make a job fail for no reason; guarantee none
for o in "${outs[@]}"; do [ -s "$o" ] || : > "$o"; done
