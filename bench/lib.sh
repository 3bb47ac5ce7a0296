# Shared helpers for benchmark scenarios (sourced by bench/run.sh).
# Everything runs on loopback; every server started here is stopped on exit.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAYD_BIN=${PAYD_BIN:-$BENCH_ROOT/build/src/cmd/payd}
export -n PAYD_BIN # payd reads PAYD_* variables as settings: it must not see this one
BENCH_TMP=$(mktemp -d /tmp/payd-bench-XXXXXX)
chmod 711 "$BENCH_TMP" # a vault child running as its own user must reach its directory
BENCH_CONNS=${BENCH_CONNS:-64}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_THREADS=${BENCH_THREADS:-2}
declare -a BENCH_PIDS=()

bench_cleanup() {
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url [curl args...]
  local url=$1; shift
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: $url did not come up" >&2; return 1
}

# start_payd NAME [payd args...]: sets PAYD_PORT, PAYD_ADMIN, PAYD_DIR
start_payd() {
  local name=$1; shift
  PAYD_DIR=$BENCH_TMP/$name
  PAYD_PORT=$(free_port); PAYD_ADMIN=$(free_port)
  mkdir -p "$PAYD_DIR"
  "$PAYD_BIN" --dev --data-dir "$PAYD_DIR" --listen 127.0.0.1:$PAYD_PORT --admin-listen 127.0.0.1:$PAYD_ADMIN \
      --set server.log_level=warn --set api.threads=$BENCH_THREADS "$@" >"$PAYD_DIR/payd.log" 2>&1 &
  BENCH_PIDS+=($!)
  PAYD_PID=$!
  wait_http "http://127.0.0.1:$PAYD_ADMIN/readyz"
}

stop_payd() { kill "$PAYD_PID" 2>/dev/null; wait "$PAYD_PID" 2>/dev/null || true; }

# start_payd_with_card NAME [payd args...]: start_payd with the usage plan and the per-address
# rate rule raised (benchmarks measure payments, not limits), then tokenize a test card;
# sets BENCH_SK (the dev secret key) and BENCH_PM (the payment method)
start_payd_with_card() {
  local name=$1; shift
  start_payd "$name" --set payments.rate_per_s=1000000 --set payments.burst=10000000 \
    --set waf.ip_rate_limit=100000000 "$@"
  BENCH_SK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$PAYD_DIR/credentials.json")
  BENCH_PM=$(curl -fsS --cacert "$PAYD_DIR/tls/ca.pem" -u "$BENCH_SK:" "https://127.0.0.1:$PAYD_PORT/v1/payment_methods" \
       -d type=card -d 'card[number]=4242424242424242' -d 'card[exp_month]=12' -d 'card[exp_year]=2034' \
       -d 'card[cvc]=123' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
}

# bench_post_lua FILE KEY CONTENT_TYPE BODY: a wrk script POSTing BODY to /v1/payment_intents
# with a unique, random Idempotency-Key per request (UUIDv4-shaped, as the Stripe SDKs send)
bench_post_lua() {
  cat >"$1" <<LUA
-- setup() runs in the main Lua state; each thread gets its own id as the global tid
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
function init(args) math.randomseed(os.time() * 100 + tid) end
local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%012x", math.random(0, 0xffffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), math.random(0x8000, 0xbfff), math.random(0, 0xffffffffffff))
end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/payment_intents", {
    ["Authorization"] = "Bearer $2",
    ["Content-Type"] = "$3",
    ["Idempotency-Key"] = uuid() .. "-" .. tid .. "-" .. n,
  }, '$4')
end
LUA
}

# start_nginx_static NAME CERT KEY BODY: nginx serving BODY as application/json over TLS; sets NGINX_PORT
start_nginx_static() {
  local name=$1 cert=$2 key=$3 body=$4 dir=$BENCH_TMP/nginx-$1
  NGINX_PORT=$(free_port)
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<NGX
worker_processes $BENCH_THREADS;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_certificate $cert; ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '$body'; }
  }
}
NGX
  nginx -c "$dir/nginx.conf" -g 'daemon off;' &
  BENCH_PIDS+=($!)
  NGINX_PID=$!
  wait_http "https://127.0.0.1:$NGINX_PORT/" -k
}

stop_nginx() { kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null || true; }

# run_wrk URL [wrk args...]: prints "<requests/s> <p50 ms> <p99 ms>"
run_wrk() {
  local url=$1; shift
  local out
  out=$(wrk -t "$BENCH_THREADS" -c "$BENCH_CONNS" -d "${BENCH_SECONDS}s" --latency "$@" "$url" 2>&1)
  echo "$out" >>"$BENCH_TMP/wrk.log"
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  if [[ -n "$non2xx" ]]; then echo "bench: $non2xx non-2xx responses from $url" >&2; fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

to_ms() { # wrk prints 1.23ms / 456.00us / 1.20s
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# bench_round_order ROUND VARIANT...: the variants in the given order on odd rounds and reversed
# on even ones (a b c, c b a, a b c, ...), so the drift of a shared machine over a run (caches
# warming, other load coming and going) falls on every variant alike
bench_round_order() {
  local round=$1; shift
  local v=("$@") i
  if ((round % 2 == 1)); then echo "${v[*]}"; return; fi
  for ((i = ${#v[@]} - 1; i >= 0; i--)); do printf '%s%s' "${v[$i]}" "$( ((i > 0)) && echo ' ')"; done
  echo
}

# median VALUE...: the median of numbers (the mean of the middle two for an even count)
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
