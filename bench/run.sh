#!/usr/bin/env bash
# Runs benchmark scenarios side by side with their baselines on this machine.
#   bench/run.sh              all scenarios
#   bench/run.sh healthz      one scenario (files in bench/scenarios/<name>.sh)
# Environment: BENCH_SECONDS (10), BENCH_CONNS (64), BENCH_THREADS (2), PAYD_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
for tool in wrk sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/deps.sh --bench (make bench does)" >&2; exit 1; }
done
for f in bench/scenarios/*.sh; do source "$f"; done

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  for f in bench/scenarios/*.sh; do scenarios+=("$(basename "$f" .sh)"); done
fi
echo "payd benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, ${BENCH_SECONDS}s per run, ${BENCH_CONNS} connections"
for s in "${scenarios[@]}"; do
  "scenario_$s"
done
