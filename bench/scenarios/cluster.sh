# The payments scenario through HAProxy on a local cluster (deploy/local/cluster: PostgreSQL
# primary + synchronous standby, Redis + Sentinel, two vaults, N payd nodes) for N = 1, 2, 3,
# and with one node, the same load sent to the node directly: the difference is what HAProxy
# (TLS termination and re-encryption, one more hop) adds per request. Everything shares this
# machine's cores, so more nodes cannot show scaling here; the figures feed the sizing model
# in docs/deploy.md. Environment: BENCH_CLUSTER_NODES ("1 2 3").

# cluster_json KEY: a field of the running cluster's cluster.json (dotted path)
cluster_json() {
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[int(k)] if k.isdigit() else v[k]
print(v)' "$CLUSTER_DIR/cluster.json" "$1"
}

# cluster_run URL LABEL: wrk with the payments script against URL (the cluster's CA trusted by wrk's
# TLS: wrk does not verify certificates); prints "LABEL rps p50 p99"
cluster_run() {
  local r
  r=$(run_wrk "$1/v1/payment_intents" -s "$BENCH_TMP/cluster.lua")
  printf '%-44s %12s %9s %9s\n' "  $2" $r
}

scenario_cluster() {
  CLUSTER_CMD=$BENCH_ROOT/deploy/local/cluster
  local bindir
  bindir=$(dirname "$PAYD_BIN")
  printf '%-44s %12s %9s %9s\n' "payments through HAProxy (cluster)" "payments/s" "p50 ms" "p99 ms"
  for n in ${BENCH_CLUSTER_NODES:-1 2 3}; do
    CLUSTER_DIR=$BENCH_TMP/cluster-$n
    mkdir -p "$CLUSTER_DIR"
    trap '"$CLUSTER_CMD" down "$CLUSTER_DIR" >/dev/null 2>&1; bench_cleanup' EXIT
    "$CLUSTER_CMD" up "$CLUSTER_DIR" --nodes "$n" --bin "$bindir" --no-prometheus --edge-rate 1000000000 \
      --set server.log_level=warn --set api.threads="$BENCH_THREADS" --set payments.rate_per_s=1000000 \
      --set payments.burst=10000000 --set waf.ip_rate_limit=100000000 >"$CLUSTER_DIR/up.log" 2>&1 \
      || { cat "$CLUSTER_DIR/up.log" >&2; return 1; }
    local api sk ca pm
    api=$(cluster_json api_url); sk=$(cluster_json secret_key); ca=$(cluster_json ca)
    pm=$(curl -fsS --cacert "$ca" -u "$sk:" "$api/v1/payment_methods" -d type=card \
      -d 'card[number]=4242424242424242' -d 'card[exp_month]=12' -d 'card[exp_year]=2034' -d 'card[cvc]=123' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    bench_post_lua "$BENCH_TMP/cluster.lua" "$sk" application/x-www-form-urlencoded \
      "amount=1999&currency=usd&confirm=true&payment_method=$pm&description=bench"
    cluster_run "$api" "$n node(s) through HAProxy"
    if [[ $n == 1 ]]; then cluster_run "$(cluster_json nodes.0.api)" "1 node directly (no HAProxy)"; fi
    "$CLUSTER_CMD" down "$CLUSTER_DIR" >/dev/null
  done
  trap bench_cleanup EXIT
}
