# POST /v1/payment_intents with confirm=true and a card tokenized in the vault, a
# unique Idempotency-Key per request, $BENCH_CONNS keep-alive TLS connections,
# durable storage (synchronous=FULL, group commit), against nginx static TLS in the
# same run. Target: >= 5,000 payments/s with p99 <= 20 ms.
# The usage plan and the per-address rate rule are raised so the benchmark measures
# payments, not the limits (the signature WAF stays on).
bench_payments_lua() { # FILE KEY PM: a wrk script sending unique idempotency keys
  cat >"$1" <<LUA
-- setup() runs in the main Lua state; each thread gets its own id as the global tid
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/v1/payment_intents", {
    ["Authorization"] = "Bearer $2",
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Idempotency-Key"] = "bench-" .. tid .. "-" .. n .. "-" .. os.time(),
  }, "amount=1999&currency=usd&confirm=true&payment_method=$3&description=bench")
end
LUA
}

scenario_payments() {
  start_payd payments --set payments.rate_per_s=1000000 --set payments.burst=10000000 --set waf.ip_rate_limit=100000000 "$@"
  local sk pm
  sk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$PAYD_DIR/credentials.json")
  pm=$(curl -fsS --cacert "$PAYD_DIR/tls/ca.pem" -u "$sk:" "https://127.0.0.1:$PAYD_PORT/v1/payment_methods" \
       -d type=card -d 'card[number]=4242424242424242' -d 'card[exp_month]=12' -d 'card[exp_year]=2034' \
       -d 'card[cvc]=123' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  bench_payments_lua "$BENCH_TMP/payments.lua" "$sk" "$pm"
  local payd_r nginx_r
  payd_r=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments.lua")
  local stored
  stored=$(sqlite3 -readonly "$PAYD_DIR/payd.db" "SELECT count(*) FROM charges WHERE status = 'succeeded'")
  start_nginx_static payments "$PAYD_DIR/tls/server.pem" "$PAYD_DIR/tls/server-key.pem" '{"object":"payment_intent"}'
  stop_payd
  nginx_r=$(run_wrk "https://127.0.0.1:$NGINX_PORT/")
  stop_nginx
  read -r p_rps p_p50 p_p99 <<<"$payd_r"
  read -r n_rps n_p50 n_p99 <<<"$nginx_r"
  printf '%-40s %12s %9s %9s\n' "payments" "req/s" "p50 ms" "p99 ms"
  printf '%-40s %12s %9s %9s\n' "  payd POST /v1/payment_intents confirm" "$p_rps" "$p_p50" "$p_p99"
  printf '%-40s %12s %9s %9s\n' "  nginx static 200 JSON" "$n_rps" "$n_p50" "$n_p99"
  printf '  succeeded charges stored: %s; ratio payd/nginx: %s (target >= 5000 payments/s, p99 <= 20 ms)\n' \
    "$stored" "$(ratio "$p_rps" "$n_rps")"
}
