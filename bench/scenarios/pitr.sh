# Point-in-time recovery of the SQLite store (docs/backup.md, "Point in time"): the
# payments scenario's load for $BENCH_SECONDS with [backup] wal_archive = false, then on a
# fresh payd with it true (a backup first), the archive's size; then, with payd
# stopped, `payctl backup restore --until T` (T: the end of the load) timed with its peak
# memory, and the payments the restored store holds against those payd acknowledged.
# As root (payctl reads the vault's files).
scenario_pitr() {
  local payctl=${PAYCTL_BIN:-$BENCH_ROOT/build/src/cmd/payctl}
  start_payd_with_card pitr-off "$@"
  bench_post_lua "$BENCH_TMP/pitr.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
  local off on
  off=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/pitr.lua")
  stop_payd
  start_payd_with_card pitr-on --set backup.wal_archive=true "$@"
  bench_post_lua "$BENCH_TMP/pitr.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
  local arch="$BENCH_TMP/pitr.pdbk" set=(--set backup.wal_archive=true)
  "$payctl" --data-dir "$PAYD_DIR" "${set[@]}" backup create --out "$arch" >/dev/null
  on=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/pitr.lua")
  sleep 1 # the archiver's next rounds
  local until n_live wal_bytes
  until=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  n_live=$(sqlite3 -readonly "$PAYD_DIR/payd.db" "SELECT count(*) FROM charges WHERE status = 'succeeded'")
  stop_payd
  wal_bytes=$(du -cb "$PAYD_DIR"/wal-archive/*.pdwal | awk 'END { print $1 }')
  /usr/bin/time -f '%e %M' -o "$BENCH_TMP/time" "$payctl" --data-dir "$PAYD_DIR" "${set[@]}" \
    backup restore "$arch" --data-dir "$BENCH_TMP/pitr-restored" --until "$until" >"$BENCH_TMP/pitr-restore.log" 2>&1 ||
    { echo "bench: restore --until failed:" >&2; cat "$BENCH_TMP/pitr-restore.log" >&2; return 1; }
  local n_restored
  n_restored=$(sqlite3 -readonly "$BENCH_TMP/pitr-restored/payd.db" "SELECT count(*) FROM charges WHERE status = 'succeeded'")
  read -r r0 _ p0 <<<"$off"
  read -r r1 _ p1 <<<"$on"
  printf '%-44s %s\n' "pitr (wal_archive)" ""
  printf '  load: %s payments/s (p99 %s ms) archiving, %s/s (p99 %s ms) without\n' "$r1" "$p1" "$r0" "$p0"
  printf '  WAL archive %s bytes for %s payments\n' "$wal_bytes" "$n_live"
  printf '  restore --until the end of the load: %s s, peak %s KiB; %s payments restored of %s acknowledged\n' \
    $(cat "$BENCH_TMP/time") "$n_restored" "$n_live"
  grep -o 'rolled forward: .*' "$BENCH_TMP/pitr-restore.log" | sed 's/^/  /'
}
