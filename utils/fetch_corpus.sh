# shellcheck shell=bash
# . utils/fetch_corpus.sh NAME WHAT PATH...
# Sourced by a recipe's local/data.sh after its options: keeps $corpus_dir (by default the shared read-only
# copy) when it holds every PATH (relative to it; a trailing / asks for a folder). Else it says so, naming
# the corpus as WHAT, fetches corpus NAME from its public origin into downloads/NAME (python -m
# cald_asr.corpora.download, which leaves a complete copy there as it is) and points $corpus_dir there.

fetch_corpus() {
  local name=$1 what=$2 path missing=
  shift 2
  for path in "$@"; do [ -e "$corpus_dir/$path" ] || missing+="${missing:+ and }$corpus_dir/$path"; done
  [ -n "$missing" ] || return 0
  echo "$0: no $what at $corpus_dir ($missing missing); fetching it into downloads/$name"
  python -m cald_asr.corpora.download "$name" "downloads/$name"
  corpus_dir="downloads/$name"
}
fetch_corpus "$@"
unset -f fetch_corpus
