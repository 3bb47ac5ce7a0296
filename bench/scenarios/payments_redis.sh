# The payments scenario with three cache/stream variants, alternated in one run:
#   memory   the in-process cache, no stream (no Redis configured at all);
#   redis    [cache] backend = redis (shared limits), [stream] backend = off;
#   stream   [cache] backend = redis and the transaction stream on (every event XADDed to
#            payd:txn:N, its payload envelope-encrypted under alias/events through the vault).
# BENCH_REDIS_ROUNDS rounds (default 3), the order reversed every other round (memory redis
# stream, stream redis memory, ...: bench_round_order), so drift of the machine falls on every
# variant; the summary is each variant's median and the ratio of the medians.
# A redis-server is started here on loopback, no persistence, emptied before each run. Limits are
# raised as in `payments` but still charged on every request (usage plan, per-address rule,
# velocity), so the Redis runs pay for the mirror and its sync thread, and the stream runs also
# for the relay's XADDs. Target (issue 13): stream costs 10 % or less against memory.
scenario_payments_redis() {
  local rounds=${BENCH_REDIS_ROUNDS:-3} rport rdir
  rport=$(free_port); rdir=$BENCH_TMP/redis
  mkdir -p "$rdir"
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" \
    --logfile "$rdir/redis.log" &
  BENCH_PIDS+=($!)
  local redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$rport" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  local url="redis://127.0.0.1:$rport" r run res rps p50 p99
  local -A args=(
    [memory]="--set cache.backend=memory --set stream.backend=off"
    [redis]="--set cache.backend=redis --set cache.url=$url --set stream.backend=off"
    [stream]="--set cache.backend=redis --set cache.url=$url --set stream.backend=redis ${BENCH_STREAM_ARGS:-}"
  )
  local -A label=(
    [memory]="memory (in-process, no stream)"
    [redis]="redis (shared limits)"
    [stream]="redis + stream (encrypted events)"
  )
  local -A rps_of=() p50_of=() p99_of=()
  printf '%-40s %12s %9s %9s\n' "payments, cache backend" "req/s" "p50 ms" "p99 ms"
  for ((r = 1; r <= rounds; r++)); do
    for run in $(bench_round_order "$r" memory redis stream); do
      redis-cli -p "$rport" FLUSHALL >/dev/null
      # shellcheck disable=SC2086 # the args are words
      start_payd_with_card "payments-$run-$r" ${args[$run]}
      bench_post_lua "$BENCH_TMP/payments-$run-$r.lua" "$BENCH_SK" application/x-www-form-urlencoded \
        "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
      res=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments-$run-$r.lua")
      read -r rps p50 p99 <<<"$res"
      rps_of[$run]+="$rps "; p50_of[$run]+="$p50 "; p99_of[$run]+="$p99 "
      local note=""
      if [[ $run != memory ]] && grep -q "in-process fallback" "$PAYD_DIR/payd.log"; then
        note="  (fell back to the in-process cache: see $PAYD_DIR/payd.log)"
      fi
      if [[ $run == stream ]]; then
        # the relay publishes after commit: give it until the stream stops growing (at most 30 s)
        local last=-1 now waited=0
        for _ in $(seq 1 60); do
          now=0
          for p in 0 1 2; do now=$((now + $(redis-cli -p "$rport" XLEN "payd:txn:$p"))); done
          [[ $now == "$last" ]] && break
          last=$now; sleep 0.5; waited=$((waited + 1))
        done
        note+="  $now entries, settled $(awk -v w="$waited" 'BEGIN { printf "%.1f", w / 2 }') s after the load"
      fi
      stop_payd
      printf '%-40s %12s %9s %9s%s\n' "  round $r $run" "$rps" "$p50" "$p99" "$note"
    done
  done
  kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true
  local -A med=()
  echo "  medians over $rounds rounds:"
  for run in memory redis stream; do
    # shellcheck disable=SC2086 # the lists are words
    med[$run]=$(median ${rps_of[$run]})
    # shellcheck disable=SC2086
    printf '%-40s %12s %9s %9s\n' "    ${label[$run]}" "${med[$run]}" "$(median ${p50_of[$run]})" "$(median ${p99_of[$run]})"
  done
  printf '  ratio of medians redis/memory: %s, redis+stream/memory: %s req/s (target >= 0.90)\n' \
    "$(ratio "${med[redis]}" "${med[memory]}")" "$(ratio "${med[stream]}" "${med[memory]}")"
}
