# The cost of recording metrics: the payments scenario (POST /v1/payment_intents
# confirm=true, durable, WAF on) with [metrics] enabled = true and = false, in
# BENCH_METRICS_ROUNDS rounds (default 3) of one run each, the order swapped every
# round (on off, off on, ...) so that drift of the machine falls on both. Target: "on"
# within 2 % of "off". With BENCH_METRICS_SCRAPE=1 (the default) a /metrics scrape
# every second runs during the "on" runs, as Prometheus would.
scenario_payments_metrics() {
  local rounds=${BENCH_METRICS_ROUNDS:-3} on_sum=0 off_sum=0 r mode res rps p50 p99
  printf '%-40s %12s %9s %9s\n' "payments, metrics on/off" "req/s" "p50 ms" "p99 ms"
  for ((r = 1; r <= rounds; r++)); do
    for mode in $(bench_round_order "$r" true false); do
      start_payd_with_card "metrics_${mode}_$r" --set metrics.enabled=$mode
      bench_post_lua "$BENCH_TMP/payments.lua" "$BENCH_SK" application/x-www-form-urlencoded \
        "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
      local scraper=
      if [[ $mode == true && ${BENCH_METRICS_SCRAPE:-1} == 1 ]]; then
        # each scrape is checked for torn histograms (bench/check_scrape.py); tally in scrapes.log
        (while sleep 1; do
          if curl -fsS "http://127.0.0.1:$PAYD_ADMIN/metrics" | python3 "$BENCH_ROOT/bench/check_scrape.py" >>"$BENCH_TMP/torn.log"; then
            echo ok; else echo torn; fi >>"$BENCH_TMP/scrapes.log"
        done) &
        scraper=$!
      fi
      res=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments.lua")
      [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
      stop_payd
      read -r rps p50 p99 <<<"$res"
      printf '%-40s %12s %9s %9s\n' "  round $r metrics.enabled=$mode" "$rps" "$p50" "$p99"
      if [[ $mode == true ]]; then on_sum=$(awk -v a="$on_sum" -v b="$rps" 'BEGIN{print a+b}');
      else off_sum=$(awk -v a="$off_sum" -v b="$rps" 'BEGIN{print a+b}'); fi
    done
  done
  local scrapes torn
  scrapes=$(grep -c . "$BENCH_TMP/scrapes.log" 2>/dev/null || true)
  torn=$(grep -c torn "$BENCH_TMP/scrapes.log" 2>/dev/null || true)
  printf '  /metrics scraped every second under load: %s scrapes, %s with a torn histogram (target 0)\n' \
    "${scrapes:-0}" "${torn:-0}"
  awk -v on="$on_sum" -v off="$off_sum" -v n="$rounds" 'BEGIN {
    printf "  mean on %.0f req/s, off %.0f req/s: cost %.2f %% (target <= 2 %%)\n", on / n, off / n, (off - on) / off * 100 }'
}
