# The backup drill's figures: the payments scenario's load for $BENCH_SECONDS, then, with
# payd still running, `payctl backup create --out F` (the online snapshot), `verify` and
# `restore` into a new dir, each timed with its peak memory, and the archive's size next
# to the databases'. A second create runs while wrk keeps posting payments, with the
# load's rate beside the first run's. As root (payctl reads the vault's files).
scenario_backup() {
  local payctl=${PAYCTL_BIN:-$BENCH_ROOT/build/src/cmd/payctl}
  start_payd_with_card backup "$@"
  bench_post_lua "$BENCH_TMP/backup.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
  local load1 load2 n dbs arch="$BENCH_TMP/drill.pdbk" t
  load1=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/backup.lua")
  n=$(sqlite3 -readonly "$PAYD_DIR/payd.db" "SELECT count(*) FROM charges WHERE status = 'succeeded'")
  dbs=$(du -cb "$PAYD_DIR"/payd.db* "$PAYD_DIR"/vault/vault.db* 2>/dev/null | awk 'END { print $1 }')
  # timed: "<seconds> <peak KiB>"
  timed() { /usr/bin/time -f '%e %M' -o "$BENCH_TMP/time" "$@" >/dev/null 2>&1; cat "$BENCH_TMP/time"; }
  local c v r
  c=$(timed "$payctl" --data-dir "$PAYD_DIR" backup create --out "$arch")
  v=$(timed "$payctl" backup verify "$arch")
  r=$(timed "$payctl" backup restore "$arch" --data-dir "$BENCH_TMP/restored")
  local size
  size=$(stat -c %s "$arch")
  # the same backup while payments keep coming
  rm -f "$arch"
  (sleep 2; timed "$payctl" --data-dir "$PAYD_DIR" backup create --out "$arch" >"$BENCH_TMP/under_load") &
  t=$!
  load2=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/backup.lua")
  wait "$t"
  stop_payd
  read -r r1 _ p1 <<<"$load1"
  read -r r2 _ p2 <<<"$load2"
  printf '%-44s %s\n' "backup" ""
  printf '  %s succeeded payments, databases %s bytes; archive %s bytes\n' "$n" "$dbs" "$size"
  printf '  create %s s (peak %s KiB), verify %s s (%s KiB), restore %s s (%s KiB)\n' $c $v $r
  printf '  create under load: %s s (peak KiB %s); load %s payments/s (p99 %s ms) vs %s/s (p99 %s ms) without\n' \
    $(cat "$BENCH_TMP/under_load") "$r2" "$p2" "$r1" "$p1"
}
