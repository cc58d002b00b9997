#!/usr/bin/env bash
# Kaldi-style option parsing; *source* this file after defining defaults:
#   nj=4; . utils/parse_options.sh
# Each "--some-name value" or "--some_name=value" sets $some_name ('-' and '_' are the same),
# but only for variables the calling script already defined, so a typo fails loudly instead of
# being silently ignored. A variable whose default is true/false only accepts true/false.
# Parsing stops at the first argument that is not an option (or after "--"); positional
# arguments stay in "$@". "--help"/"-h" prints $help_message.
# Also accepts "--config FILE": a file of "--name value" lines read before the rest.

__po_usage_exit() { echo "$0: $*" >&2; [ -n "${help_message:-}" ] && echo "$help_message" >&2; exit 1; }

__po_set() {
  local __po_name="${1#--}"
  __po_name="${__po_name//-/_}"
  case "$__po_name" in
    ''|[0-9]*|*[!a-zA-Z0-9_]*) __po_usage_exit "invalid option name '$1'";;
  esac
  if ! declare -p "$__po_name" >/dev/null 2>&1; then
    __po_usage_exit "unknown option '$1'"
  fi
  local __po_old="${!__po_name}"
  if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
    if [ "$2" != true ] && [ "$2" != false ]; then
      __po_usage_exit "option '$1' takes true or false, not '$2'"
    fi
  fi
  printf -v "$__po_name" '%s' "$2"
}

if [ "${1:-}" = "--config" ]; then
  [ $# -ge 2 ] || __po_usage_exit "--config needs a file"
  [ -f "$2" ] || __po_usage_exit "config file '$2' not found"
  while read -r __po_k __po_v; do
    case "$__po_k" in ''|'#'*) continue;; esac
    __po_set "$__po_k" "$__po_v"
  done < "$2"
  shift 2
fi

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) echo "${help_message:-no help for $0}"; exit 0;;
    --) shift; break;;
    --*=*) __po_set "${1%%=*}" "${1#*=}"; shift;;
    --*) [ $# -ge 2 ] || __po_usage_exit "option '$1' needs a value"
         __po_set "$1" "$2"; shift 2;;
    *) break;;
  esac
done
unset -f __po_set __po_usage_exit
true
