# The payments scenario three times in one run:
#   memory         the in-process cache, no stream (no Redis configured at all);
#   redis          [cache] backend = redis (shared limits), [stream] backend = off;
#   redis+stream   [cache] backend = redis and the transaction stream on (every event XADDed to
#                  payd:txn:N, its payload envelope-encrypted under alias/events through the vault).
# A redis-server is started here on loopback, no persistence. Limits are raised as in `payments`
# but still charged on every request (usage plan, per-address rule, velocity), so the Redis runs
# pay for the mirror and its sync thread, and the last one also for the relay's XADDs.
# Target (issue 13): redis+stream costs 10 % or less against memory.
scenario_payments_redis() {
  local rport rdir
  rport=$(free_port); rdir=$BENCH_TMP/redis
  mkdir -p "$rdir"
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" \
    --logfile "$rdir/redis.log" &
  BENCH_PIDS+=($!)
  local redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$rport" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  local url="redis://127.0.0.1:$rport" results=() entries=0 waited=0
  local -A args=(
    [memory]="--set cache.backend=memory --set stream.backend=off"
    [redis]="--set cache.backend=redis --set cache.url=$url --set stream.backend=off"
    [stream]="--set cache.backend=redis --set cache.url=$url --set stream.backend=redis ${BENCH_STREAM_ARGS:-}"
  )
  for run in memory redis stream; do
    # shellcheck disable=SC2086 # the args are words
    start_payd_with_card "payments-$run" ${args[$run]}
    bench_post_lua "$BENCH_TMP/payments-$run.lua" "$BENCH_SK" application/x-www-form-urlencoded \
      "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
    results+=("$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments-$run.lua")")
    if [[ $run != memory ]] && grep -q "in-process fallback" "$PAYD_DIR/payd.log"; then
      echo "  warning: the $run run fell back to the in-process cache (see $PAYD_DIR/payd.log)"
    fi
    if [[ $run == stream ]]; then
      # the relay publishes after commit: give it until the stream stops growing (at most 30 s)
      local last=-1 now
      for _ in $(seq 1 60); do
        now=0
        for p in 0 1 2; do now=$((now + $(redis-cli -p "$rport" XLEN "payd:txn:$p"))); done
        [[ $now == "$last" ]] && break
        last=$now; sleep 0.5; waited=$((waited + 1))
      done
      entries=$now
    fi
    stop_payd
  done
  kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true
  read -r m_rps m_p50 m_p99 <<<"${results[0]}"
  read -r r_rps r_p50 r_p99 <<<"${results[1]}"
  read -r s_rps s_p50 s_p99 <<<"${results[2]}"
  printf '%-40s %12s %9s %9s\n' "payments, cache backend" "req/s" "p50 ms" "p99 ms"
  printf '%-40s %12s %9s %9s\n' "  memory (in-process, no stream)" "$m_rps" "$m_p50" "$m_p99"
  printf '%-40s %12s %9s %9s\n' "  redis (shared limits)" "$r_rps" "$r_p50" "$r_p99"
  printf '%-40s %12s %9s %9s\n' "  redis + stream (encrypted events)" "$s_rps" "$s_p50" "$s_p99"
  printf '  ratio redis/memory: %s, redis+stream/memory: %s req/s (target >= 0.90)\n' \
    "$(ratio "$r_rps" "$m_rps")" "$(ratio "$s_rps" "$m_rps")"
  printf '  stream entries after the redis+stream run: %s (settled %s s after the load)\n' \
    "$entries" "$(awk -v w="$waited" 'BEGIN { printf "%.1f", w / 2 }')"
}
