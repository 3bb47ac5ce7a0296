#!/usr/bin/env bash
# deploy/haproxy_run: deploy/haproxy/haproxy.cfg in front of a real payd on loopback. HAProxy
# checks /readyz over TLS and marks the node UP (L7OK), a payment goes through it (TLS to
# HAProxy, TLS again to payd, verified against payd's CA), and after SIGTERM to payd the node
# is DOWN within 10 s. The copy differs from the file only where a test must: loopback
# addresses and free ports, payd's dev CA and certificate, one server, no chroot/user (the
# test may not be root), and maxconn lowered to fit this machine's open-file limit.
# Usage: haproxy_run.sh HAPROXY PAYD SOURCE_DIR
set -euo pipefail
haproxy=$1 payd=$2 src=$3
tmp=$(mktemp -d)
chmod 0711 "$tmp" # payd started as root gives its data dir to its user
payd_pid= ha_pid=
cleanup() {
    [[ -n "$ha_pid" ]] && kill "$ha_pid" 2>/dev/null || true
    [[ -n "$payd_pid" ]] && kill -KILL "$payd_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api=$(free_port) admin=$(free_port) front=$(free_port) stats=$(free_port)

"$payd" --dev --data-dir "$tmp/d" --listen "127.0.0.1:$api" --admin-listen "127.0.0.1:$admin" \
    --set waf.trusted_proxies=127.0.0.1/32 >"$tmp/payd.log" 2>&1 &
payd_pid=$!
for _ in $(seq 1 400); do
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
    kill -0 "$payd_pid" 2>/dev/null || { cat "$tmp/payd.log"; echo "FAIL: payd did not start"; exit 1; }
    sleep 0.1
done
curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "FAIL: payd not ready"; exit 1; }

cp "$tmp/d/tls/ca.pem" "$tmp/nodes-ca.pem"
cat "$tmp/d/tls/server.pem" "$tmp/d/tls/server-key.pem" >"$tmp/api.pem"
sed -e "s|/etc/haproxy/payd|$tmp|g" -e "s|bind :443 |bind 127.0.0.1:$front |" -e "s|bind :8404|bind 127.0.0.1:$stats|" \
    -e "s|server payd-1 payd-1:8443 sni str(payd-1) verifyhost payd-1|server payd-1 127.0.0.1:$api sni str(localhost) verifyhost localhost|" \
    -e '/^    server payd-[23] /d' -e '/^    chroot /d' -e '/^    user haproxy/d' -e '/^    group haproxy/d' \
    -e 's/^    maxconn 50000/    maxconn 2000/' -e 's/^    maxconn 40000/    maxconn 1000/' \
    "$src/deploy/haproxy/haproxy.cfg" >"$tmp/haproxy.cfg"
grep -q "server payd-1 127.0.0.1:$api " "$tmp/haproxy.cfg" || { echo "FAIL: the server line was not found to rewrite"; exit 1; }
"$haproxy" -W -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
ha_pid=$!

state() { curl -fs "http://127.0.0.1:$stats/stats;csv" | awk -F, '$1 == "payd" && $2 == "payd-1" { print $18 "," $37 }'; }
up=
for _ in $(seq 1 100); do
    s=$(state || true)
    if [[ "$s" == UP,L7OK ]]; then up=1; break; fi
    sleep 0.1
done
[[ -n "$up" ]] || { cat "$tmp/haproxy.log"; echo "FAIL: payd-1 not UP by its /readyz check (state: ${s:-none})"; exit 1; }
echo "payd-1 is UP (L7OK: /readyz 200 over TLS)"
metrics=$(curl -fs "http://127.0.0.1:$stats/metrics")
grep -q '^haproxy_server_status{proxy="payd",server="payd-1",state="UP"} 1' <<<"$metrics" ||
    { echo "FAIL: the Prometheus endpoint does not show payd-1 UP"; exit 1; }

key=$(grep -o 'sk_test_[A-Za-z0-9]*' "$tmp/d/credentials.json" | head -1)
out=$(curl -fsS --cacert "$tmp/d/tls/ca.pem" --resolve "localhost:$front:127.0.0.1" -u "$key:" \
    "https://localhost:$front/v1/payment_intents" -d amount=1099 -d currency=usd -d payment_method=pm_card_visa -d confirm=true)
grep -q '"status": *"succeeded"' <<<"$out" || { echo "$out"; echo "FAIL: no succeeded payment through HAProxy"; exit 1; }
echo "a payment went through HAProxy: succeeded"

kill -TERM "$payd_pid"
t0=$(date +%s%N)
down=
for _ in $(seq 1 100); do
    s=$(state || true)
    if [[ "$s" == DOWN,* ]]; then down=1; break; fi
    sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ -n "$down" ]] || { echo "FAIL: payd-1 still ${s:-?} 10 s after SIGTERM"; exit 1; }
echo "payd-1 DOWN ($s) ${ms} ms after SIGTERM"
wait "$payd_pid" || { echo "FAIL: payd did not exit 0 after SIGTERM"; exit 1; }
payd_pid=
