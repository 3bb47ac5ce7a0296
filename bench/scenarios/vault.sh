# Vault: tokenize (api) and detokenize (processor) over the Unix socket with
# $VAULT_IN_FLIGHT (64) requests in flight. Targets: >= 50,000 ops/s, p99 <= 2 ms.
scenario_vault() {
  local dir=$BENCH_TMP/vault
  mkdir -p "$dir"
  "$BENCH_ROOT/build/src/cmd/payd-vault" --data-dir "$dir" --socket "$dir/vault.sock" --dev --log-level warn \
      >"$dir/vault.log" 2>&1 &
  local pid=$!
  BENCH_PIDS+=($pid)
  for _ in $(seq 1 100); do [[ -S "$dir/vault.sock" ]] && break; sleep 0.05; done
  echo "vault (Unix socket, ${VAULT_IN_FLIGHT:-64} in flight)"
  "$BENCH_ROOT/build/bench/vault_bench" "$dir/vault.sock" "$dir/credentials" "${BENCH_SECONDS}" "${VAULT_IN_FLIGHT:-64}"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}
