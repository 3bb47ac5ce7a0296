#!/usr/bin/env bash
# Banned calls (as curl's checksrc): none of these may appear in src/ or include/.
#   sprintf vsprintf strcpy strcat strncpy gets   unbounded or truncating string writes
#   atoi atol atof                                 no error reporting
#   strtok                                         hidden global state (strtok_r is fine)
#   system popen                                   a shell in a privileged process
#   tmpnam mktemp alloca                           races and unbounded stack
# Usage: check_banned.sh SOURCE_DIR
set -euo pipefail
root=$1
banned='sprintf|vsprintf|strcpy|strcat|strncpy|gets|atoi|atol|atof|strtok|system|popen|tmpnam|mktemp|alloca'
# a call: the name as a whole word followed by "(", outside comments and strings (roughly:
# lines whose code part, before any // or /*, holds the call)
hits=$(grep -rnE --include='*.c' --include='*.h' "(^|[^A-Za-z0-9_])($banned)[[:space:]]*\(" "$root/src" "$root/include" |
  sed -E 's#^([^:]+:[0-9]+:)(.*)$#\1\2#' |
  awk -F: '{ code = $0; sub(/^[^:]+:[0-9]+:/, "", code); sub(/\/\/.*$/, "", code); sub(/\/\*.*$/, "", code);
             gsub(/"([^"\\]|\\.)*"/, "\"\"", code);
             if (code ~ /(^|[^A-Za-z0-9_])('"$banned"')[[:space:]]*\(/) print }' || true)
if [[ -n "$hits" ]]; then
  echo "banned calls:"
  echo "$hits"
  exit 1
fi
echo "ok: no banned calls in src/ and include/"
