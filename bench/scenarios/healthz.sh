# GET /healthz on payd vs a static 200 JSON from nginx over TLS, same machine, same
# load generator (wrk, keep-alive, $BENCH_CONNS connections). Target: payd >= 90 % of nginx.
scenario_healthz() {
  start_payd healthz
  local payd_r nginx_r
  payd_r=$(run_wrk "https://127.0.0.1:$PAYD_PORT/healthz")
  start_nginx_static healthz "$PAYD_DIR/tls/server.pem" "$PAYD_DIR/tls/server-key.pem" '{"status":"ok"}'
  stop_payd
  nginx_r=$(run_wrk "https://127.0.0.1:$NGINX_PORT/healthz")
  stop_nginx
  read -r p_rps p_p50 p_p99 <<<"$payd_r"
  read -r n_rps n_p50 n_p99 <<<"$nginx_r"
  printf '%-28s %12s %9s %9s\n' "healthz" "req/s" "p50 ms" "p99 ms"
  printf '%-28s %12s %9s %9s\n' "  payd GET /healthz" "$p_rps" "$p_p50" "$p_p99"
  printf '%-28s %12s %9s %9s\n' "  nginx static 200 JSON" "$n_rps" "$n_p50" "$n_p99"
  printf '  ratio payd/nginx: %s (target >= 0.90)\n' "$(ratio "$p_rps" "$n_rps")"
}
