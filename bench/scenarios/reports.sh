# Reports over a busy ledger: the payments scenario's load for $BENCH_SECONDS, then an
# itemized report (balance_change_from_activity.itemized.1) over everything it made,
# and its download (GET /v1/files/:id/contents). Reports the balance transactions, how
# long the run took from creation to succeeded (the API answers at once; the worker
# generates), the CSV's size, the download's time and throughput, and payd's resident
# memory before and after the download (the CSV is streamed a piece at a time, so it
# should not grow with the file).
scenario_reports() {
  start_payd_with_card reports "$@"
  bench_post_lua "$BENCH_TMP/reports.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench%2C+report"
  local t0 t1 load
  t0=$(date +%s)
  sleep 1
  load=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/reports.lua")
  sleep 1.2
  t1=$(date +%s)
  local api=(curl -fsS --cacert "$PAYD_DIR/tls/ca.pem" -u "$BENCH_SK:")
  local url="https://127.0.0.1:$PAYD_PORT"
  local bts start run status file
  bts=$(sqlite3 -readonly "$PAYD_DIR/payd.db" "SELECT count(*) FROM balance_transactions WHERE created >= $t0 AND created < $t1")
  start=$(date +%s.%N)
  run=$("${api[@]}" "$url/v1/reporting/report_runs" -d report_type=balance_change_from_activity.itemized.1 \
    -d "parameters[interval_start]=$t0" -d "parameters[interval_end]=$t1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  status=pending
  for _ in $(seq 1 1200); do
    read -r status file < <("${api[@]}" "$url/v1/reporting/report_runs/$run" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["status"], (r.get("result") or {}).get("id", "-"))')
    [[ $status != pending ]] && break
    sleep 0.05
  done
  local gen_s rss0 rss1 dl size
  gen_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$PAYD_PID/status")
  dl=$("${api[@]}" -o "$BENCH_TMP/report.csv" -w '%{time_total} %{size_download}' "$url/v1/files/$file/contents")
  rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$PAYD_PID/status")
  stop_payd
  read -r dl_s size <<<"$dl"
  read -r p_rps _ p_p99 <<<"$load"
  printf '%-44s %s\n' "reports" ""
  printf '  load: %s payments/s (p99 %s ms); %s balance transactions in the interval\n' "$p_rps" "$p_p99" "$bts"
  printf '  itemized run: %s in %s s from creation (%s CSV rows)\n' "$status" "$gen_s" "$(($(wc -l <"$BENCH_TMP/report.csv") - 1))"
  printf '  download: %s bytes in %s s (%s MiB/s); payd RSS %s -> %s KiB\n' "$size" "$dl_s" \
    "$(awk -v s="$size" -v t="$dl_s" 'BEGIN { if (t > 0) printf "%.1f", s / t / 1048576; else print "n/a" }')" "$rss0" "$rss1"
}
