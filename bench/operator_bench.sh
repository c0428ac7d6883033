#!/usr/bin/env bash
# Measures `sluice operator` (issue 11) on a throwaway PostgreSQL (127.0.0.1) and the fake
# Kubernetes API server, each figure beside its baseline in the same run (bench/operator_bench.cc):
#   1. a MigrationJob already at head: watch event -> status written, median and p90, each job
#      alone and back to back (the later ones reuse the reading of the one before);
#   2. fifty MigrationJobs over five databases vs five `sluice upgrade head` processes at once;
#   3. peak RSS with 1,000 MigrationJobs cached.
# Usage: bench/operator_bench.sh [BUILD_DIR] [SAMPLES] [JOBS]
#   (builds nothing; `cmake --build BUILD_DIR --target sluice operator_bench` first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-operator-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54331}
export SLUICE_PGBOUNCER=${SLUICE_PGBOUNCER:-0}
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
echo "operator bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/operator_bench" "$build/cmd/sluice/sluice" "$SLUICE_TEST_PG_DSN" "${2:-30}" "${3:-1000}"
