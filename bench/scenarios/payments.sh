# POST /v1/payment_intents with confirm=true and a card tokenized in the vault, a
# unique Idempotency-Key per request, $BENCH_CONNS keep-alive TLS connections,
# durable storage (synchronous=FULL, group commit), against nginx static TLS in the
# same run. Target: >= 5,000 payments/s with p99 <= 20 ms.
# The signature WAF stays on.
scenario_payments() {
  start_payd_with_card payments "$@"
  bench_post_lua "$BENCH_TMP/payments.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
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
