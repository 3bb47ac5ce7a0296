#!/usr/bin/env bash
# Runs the official Stripe Node SDK against a real payd --dev on loopback.
#   tests/sdk/run.sh PAYD_BIN WORK_DIR
# Installs the pinned `stripe` package into WORK_DIR (once), starts payd on free ports,
# trusts its dev CA, runs sdk.test.js, stops payd.
set -euo pipefail
payd_bin=$1 work=$2
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
cp "$src/package.json" "$work/package.json"
if [[ ! -d "$work/node_modules/stripe" ]] || ! cmp -s "$src/package.json" "$work/.installed.json"; then
  (cd "$work" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$src/package.json" "$work/.installed.json"
fi

dir=$(mktemp -d /tmp/payd-sdk-XXXXXX)
chmod 711 "$dir"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(port) admin=$(port)
"$payd_bin" --dev --data-dir "$dir" --listen "127.0.0.1:$api" --admin-listen "127.0.0.1:$admin" \
  --set server.log_level=warn >"$dir/payd.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/payd.log" >&2; exit 1; }
  sleep 0.05
done

export NODE_PATH=$work/node_modules NODE_EXTRA_CA_CERTS=$dir/tls/ca.pem
export SDK_PORT=$api SDK_KEY
SDK_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$dir/credentials.json")
node "$src/sdk.test.js"
# payd must shut down cleanly (sanitizer reports make this fail)
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
if ((rc != 0)); then echo "payd exited with $rc:" >&2; tail -n 50 "$dir/payd.log" >&2; exit 1; fi
