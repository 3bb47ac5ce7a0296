# GET /v1/payment_intents/search over a store of 100,000 then 1,000,000 payment intents
# (BENCH_SEARCH_ROWS, the sizes to run): payd --dev makes the schema and the merchant, is stopped, the rows
# are inserted by sqlite3 in one transaction (1 ms of seq apart, every 10th succeeded,
# amounts 100..1099, usd/eur, metadata {"order":"oN"}), and payd is started again. Then:
#   - a selective search near the newest rows (status:'succeeded' AND amount>500: a match
#     every ~20 rows, so a page of 10 reads ~220 rows);
#   - a search that matches nothing (metadata['order']:'none'): it reads
#     [payments] search_scan_limit rows (10,000) and answers has_more with a next_page;
#   - a paged one: status:'succeeded', limit=100, 20 pages followed through next_page;
# each with wrk (the first two) or curl (the paged one), and payd's memory before and after
# (VmRSS, and the peak VmHWM from /proc/PID/status): the peak must not follow the table
# (the same at both sizes).
scenario_search() {
  local rows
  for rows in ${BENCH_SEARCH_ROWS:-100000 1000000}; do search_store "$rows" "$@" || return 1; done
}

# search_store ROWS [payd args...]: one store of ROWS intents, its searches and memory
search_store() {
  local rows=$1; shift
  start_payd search-$rows --set payments.rate_per_s=1000000 --set payments.burst=10000000 \
    --set waf.ip_rate_limit=100000000 "$@"
  local sk merchant
  sk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$PAYD_DIR/credentials.json")
  merchant=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["merchant_id"])' "$PAYD_DIR/credentials.json")
  stop_payd
  local now_ms t0 t1
  now_ms=$(($(date +%s%3N) - 1000))
  t0=$(date +%s.%N)
  sqlite3 "$PAYD_DIR/payd.db" >/dev/null <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO payment_intents (id, merchant_id, livemode, amount, currency, status, capture_method, metadata,
  amount_capturable, amount_received, created, seq, version)
SELECT printf('pi_bench%08d', i), '$merchant', 0, 100 + (i * 7919) % 1000, CASE WHEN i % 2 THEN 'usd' ELSE 'eur' END,
  CASE WHEN i % 10 = 0 THEN 'succeeded' ELSE 'requires_payment_method' END, 'automatic',
  printf('{"order":"o%d"}', i), 0, 0, ($now_ms - ($rows - i)) / 1000, ($now_ms - ($rows - i)) * 1000, 1
FROM n;
COMMIT;
SQL
  t1=$(date +%s.%N)
  local count size
  count=$(sqlite3 -readonly "$PAYD_DIR/payd.db" "SELECT count(*) FROM payment_intents")
  size=$(du -m "$PAYD_DIR/payd.db" | cut -f1)
  start_payd search-$rows --set payments.rate_per_s=1000000 --set payments.burst=10000000 \
    --set waf.ip_rate_limit=100000000 "$@"
  local base="https://127.0.0.1:$PAYD_PORT/v1/payment_intents/search"
  local c=(curl -fsS --cacert "$PAYD_DIR/tls/ca.pem" -u "$sk:")
  mem() { awk '/^VmRSS|^VmHWM/ {printf "%s %s MiB  ", $1, int($2 / 1024)}' "/proc/$PAYD_PID/status"; }
  local mem_before
  mem_before=$(mem)
  printf '%-52s %12s %9s %9s\n' "search ($count payment intents, ${size} MiB, inserted in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)" "req/s" "p50 ms" "p99 ms"
  printf '  (wrk: %s connections, %s threads, %s s; the scan bound is search_scan_limit = 10,000 rows)\n' \
    "${BENCH_SEARCH_CONNS:-8}" "$BENCH_THREADS" "$BENCH_SECONDS"
  local q r
  # a selective one near the newest rows
  q="query=status%3A%27succeeded%27%20AND%20amount%3E500"
  "${c[@]}" "$base?$q" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["data"])==10 and d["has_more"], d' \
    || { echo "bench: the selective search did not answer 10 results" >&2; return 1; }
  r=$(BENCH_CONNS=${BENCH_SEARCH_CONNS:-8} run_wrk "$base?$q" -H "Authorization: Bearer $sk")
  read -r rps p50 p99 <<<"$r"
  printf '%-52s %12s %9s %9s\n' "  status:'succeeded' AND amount>500 (10 of ~220 rows)" "$rps" "$p50" "$p99"
  # one that matches nothing: bounded by the scan limit
  q="query=metadata%5B%27order%27%5D%3A%27none%27"
  "${c[@]}" "$base?$q" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["data"]==[] and d["has_more"] and d["next_page"], d' \
    || { echo "bench: the empty search did not stop at the scan bound" >&2; return 1; }
  r=$(BENCH_CONNS=${BENCH_SEARCH_CONNS:-8} run_wrk "$base?$q" -H "Authorization: Bearer $sk")
  read -r rps p50 p99 <<<"$r"
  printf '%-52s %12s %9s %9s\n' "  metadata['order']:'none' (0 of 10,000 rows: the bound)" "$rps" "$p50" "$p99"
  # one request at a time: curl's time_total, the median of 5
  one() { # query string -> ms
    for _ in 1 2 3 4 5; do "${c[@]}" -o /dev/null -w '%{time_total}\n' "$base?$1"; done | sort -n | sed -n 3p |
      awk '{printf "%.1f", $1 * 1000}'
  }
  printf '  one at a time (curl, median of 5, TLS handshake included): selective %s ms, none %s ms\n' \
    "$(one "query=status%3A%27succeeded%27%20AND%20amount%3E500")" "$(one "query=metadata%5B%27order%27%5D%3A%27none%27")"
  # a paged one: the time of each page's request (curl's time_total), not of the tools around it
  local page="" n=0 total=0 ms=0
  for _ in $(seq 1 20); do
    local t
    t=$("${c[@]}" -o "$BENCH_TMP/page.json" -w '%{time_total}' "$base?query=status%3A%27succeeded%27&limit=100${page:+&page=$page}")
    read -r got page < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["data"]), d["next_page"] or "")' "$BENCH_TMP/page.json")
    total=$((total + got)); n=$((n + 1))
    ms=$(awk -v a="$ms" -v t="$t" 'BEGIN{printf "%.1f", a + t * 1000}')
    [[ -n "$page" ]] || break
  done
  printf '  status:%s limit=100, %d pages through next_page (~1,000 rows read each): %d results, %s ms in all, %s ms a page\n' \
    "'succeeded'" "$n" "$total" "$ms" "$(awk -v a="$ms" -v n="$n" 'BEGIN{printf "%.1f", a / n}')"
  printf '  payd memory before the searches: %s\n' "$mem_before"
  printf '  payd memory after the searches:  %s\n' "$(mem)"
  stop_payd
}
