#!/usr/bin/env bash
# Privilege separation holds at link time: the network-facing binaries (payd, payctl)
# contain no function of the vault server library, and the vault (payd-vault) does not
# link the HTTP libraries (libh2o, libcurl). Usage: check_symbols.sh PAYD PAYCTL PAYD_VAULT LIBPD_VAULT_SERVER.a
set -euo pipefail
payd=$1 payctl=$2 vault=$3 server_lib=$4
fail=0

# every global function or object the server library defines
server_syms=$(nm --defined-only --extern-only "$server_lib" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | sort -u)
if [[ $(wc -l <<<"$server_syms") -lt 50 ]]; then
  echo "FAIL: $server_lib defines too few symbols to be the vault server ($(wc -l <<<"$server_syms"))"
  exit 1
fi
for bin in "$payd" "$payctl"; do
  leaked=$(comm -12 <(nm --defined-only "$bin" | awk 'NF == 3 {print $3}' | sort -u) <(echo "$server_syms"))
  if [[ -n "$leaked" ]]; then
    echo "FAIL: $(basename "$bin") contains vault server code: $(echo "$leaked" | head -20 | tr '\n' ' ')"
    fail=1
  else
    echo "ok: $(basename "$bin") has none of the $(wc -l <<<"$server_syms") vault server symbols"
  fi
done

if readelf -d "$vault" | grep -q 'NEEDED.*libh2o' || nm "$vault" | grep -q ' [TU] h2o_'; then
  echo "FAIL: $(basename "$vault") links libh2o"
  fail=1
else
  echo "ok: $(basename "$vault") does not link libh2o"
fi
# nor libcurl (the alarm notifier's and the webhook engine's HTTP client)
if readelf -d "$vault" | grep -q 'NEEDED.*libcurl' || nm "$vault" | grep -q ' [TU] curl_'; then
  echo "FAIL: $(basename "$vault") links libcurl"
  fail=1
else
  echo "ok: $(basename "$vault") does not link libcurl"
fi
exit $fail
