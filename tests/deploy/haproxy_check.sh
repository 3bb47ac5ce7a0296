#!/usr/bin/env bash
# deploy/haproxy_config: deploy/haproxy/haproxy.cfg passes `haproxy -c` with no warning. The
# file names certificates under /etc/haproxy/payd/ and the nodes payd-1..3 (compose's DNS, or
# a host's); the checked copy points at certificates made here and at loopback addresses, so
# that every server line is resolved and checked rather than disabled.
# Usage: haproxy_check.sh HAPROXY SOURCE_DIR
set -euo pipefail
haproxy=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=payd-test-ca \
    -addext subjectAltName=DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/nodes-ca.pem" 2>/dev/null
cat "$tmp/nodes-ca.pem" "$tmp/key.pem" > "$tmp/api.pem"
sed -e "s|/etc/haproxy/payd|$tmp|g" -e 's|\(server payd-[0-9] \)payd-\([0-9]\):|\1127.0.0.\2:|' \
    "$src/deploy/haproxy/haproxy.cfg" > "$tmp/haproxy.cfg"
[[ $(grep -c '^    server payd-[0-9] 127\.0\.0\.[0-9]:8443 ' "$tmp/haproxy.cfg") -eq 3 ]] || {
    echo "FAIL: expected three server lines payd-1..3 at port 8443"; exit 1; }
out=$("$haproxy" -c -f "$tmp/haproxy.cfg" 2>&1) || { echo "$out"; echo "FAIL: haproxy -c"; exit 1; }
echo "$out"
if grep -q -E 'WARNING|ALERT' <<<"$out"; then
    echo "FAIL: haproxy -c has warnings"; exit 1
fi
# what the deployment relies on is there (docs/deploy.md, "HAProxy")
for want in 'http-check send meth GET uri /readyz' 'on-marked-down shutdown-sessions' 'verify required' \
            'use-service prometheus-exporter' 'track-sc0 src' 'option forwardfor' \
            'disable-l7-retry if !METH_GET !{ req.hdr(idempotency-key) -m found }'; do
    grep -q -F -- "$want" "$src/deploy/haproxy/haproxy.cfg" || { echo "FAIL: haproxy.cfg lacks: $want"; exit 1; }
done
echo "deploy/haproxy/haproxy.cfg: ok"
