#!/usr/bin/env bash
# Measures sluice behind PgBouncer in transaction pooling mode with the lease lock (issue 9's speed
# targets), side by side in one command, on a throwaway PostgreSQL with the PgBouncers of
# scripts/pg-test-cluster.sh in front of it (PgBouncer 1.18, 127.0.0.1):
#   1. applying 1,000 small revisions from empty: `sluice upgrade head --lock-mode=lease` through
#      the transaction pooler vs psql running the same SQL through the same pooler, one transaction
#      per revision (target <= 1.3x);
#   2. sixteen `sluice upgrade head --lock-mode=lease` runners started at once on 100 pending
#      revisions vs one runner, all through the transaction pooler (target <= 1.3x); beside it the
#      machine's floor: one runner started with fifteen bare libpq clients that connect through the
#      pooler and run one query (build/bench/pg_select_client).
# Each figure is the median of REPS (default 3) repetitions; within a repetition the contenders run
# one after the other (sluice, then psql; one runner, then sixteen, then the floor), so that other
# load on the machine falls on all alike. Every run starts on a fresh database, and every sluice run
# is checked (exit 0, at r1000 / r0100) so that a failed run is never timed.
#
# The psql baseline, and why it is fair: one psql process, the real client binary
# (/usr/lib/postgresql/15/bin/psql; the `psql` on the PATH is Debian's Perl wrapper, which adds
# 30-40 ms to every call), connected through the same transaction-pooling PgBouncer to the same kind
# of fresh database, runs one script: Alembic's version table, then every revision's SQL exactly as
# its manifest has it, each revision wrapped in BEGIN ... COMMIT together with its version-table
# bump (INSERT for the first, UPDATE after), as sluice commits each revision with its version bump.
# So both do the same statements in the same 1,000 transactions through the same pooler, and both
# pay one process start and one connection. psql does nothing else: sluice's history row (with the
# manifest and checksum), its lease (taken, checked inside each revision's transaction, renewed by
# a heartbeat on a connection of its own, released) and reading and checking 1,000 manifests are
# what a ratio above 1 costs.
#
# Usage: bench/pooler_bench.sh [BUILD_DIR]   (builds nothing: run scripts/build.sh first)
# Environment: REPS (default 3); SLUICE_PG_DIR (default /tmp/sluice-pooler-bench-pg) and
# SLUICE_PG_PORT (default 54332; the poolers listen on +1 and +2). The cluster is stopped and
# deleted at the end. Needs Debian's pgbouncer package (scripts/install-deps.sh installs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
sluice=$build/cmd/sluice/sluice
select_client=$build/bench/pg_select_client
reps=${REPS:-3}
psql=${PSQL:-/usr/lib/postgresql/15/bin/psql}
for binary in "$sluice" "$select_client" "$psql"; do
  [ -x "$binary" ] || {
    echo "pooler_bench: $binary is missing: build first (scripts/build.sh $build)" >&2
    exit 1
  }
done
work=$(mktemp -d /tmp/sluice-pooler-bench.XXXXXX)
chmod 755 "$work"

export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-pooler-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54332}
export SLUICE_PGBOUNCER=1
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
admin=$SLUICE_TEST_PG_DSN
pooled_base=${SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN%/*}

# shellcheck source=bench/bench_lib.sh
. "$root/bench/bench_lib.sh"

# Fails the bench unless database $1 is at revision $2 with $3 applied history rows.
check_applied() {
  local got
  got=$("$psql" -X -At -d "${admin%/*}/$1" -c \
    "SELECT (SELECT string_agg(version_num, ',') FROM alembic_version) || ' ' || (SELECT count(*) FROM sluice_history WHERE outcome = 'applied')")
  if [ "$got" != "$2 $3" ]; then
    echo "pooler_bench: database $1 is at '$got', expected '$2 $3': the timed run was wrong" >&2
    exit 1
  fi
}

# Times one lease-mode upgrade of $1 (a manifests directory) on a fresh database $2 through the
# pooler; prints wall milliseconds.
time_sluice() {
  fresh_db "$2"
  local start end
  start=$(now_ns)
  must "$sluice" upgrade head --migrations "$1" --database-url "$pooled_base/$2" --lock-mode=lease
  end=$(now_ns)
  echo $(((end - start) / 1000000))
}

# Starts one lease-mode runner on 100 pending revisions through the pooler, and beside it fifteen
# of `COMMAND...` (started at the same moment); waits for all; prints wall milliseconds. Fails the
# bench when any of them fails.
runner_with_company() {
  local start end pids=() pid i failed=0
  fresh_db bench_many
  start=$(now_ns)
  HOSTNAME=pod-0 "$sluice" upgrade head --migrations "$work/m100" \
    --database-url "$pooled_base/bench_many" --lock-mode=lease >/dev/null 2>"$work/runner-0.err" &
  pids+=($!)
  for i in $(seq 1 15); do
    HOSTNAME=pod-$i "$@" >/dev/null 2>"$work/runner-$i.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  end=$(now_ns)
  if [ "$failed" -ne 0 ]; then
    echo "pooler_bench: a runner failed:" >&2
    cat "$work"/runner-*.err >&2
    exit 1
  fi
  echo $(((end - start) / 1000000))
}

echo "sluice pooler bench: $(nproc) cores, PostgreSQL $("$psql" -X -At -d "$admin" -c 'SHOW server_version'), $(/usr/sbin/pgbouncer --version | head -1) in transaction pooling mode, --lock-mode=lease, median of $reps"

# 1. 1,000 revisions from empty, sluice vs psql, both through the transaction pooler.
make_revisions "$work/m1000" 1000
make_revisions_sql "$work/m1000.sql" 1000
s_runs=()
p_runs=()
for _ in $(seq "$reps"); do
  s_runs+=("$(time_sluice "$work/m1000" bench_apply)")
  check_applied bench_apply r1000 1000
  fresh_db bench_apply
  p_runs+=("$(time_ms "$psql" -X -q -v ON_ERROR_STOP=1 -d "$pooled_base/bench_apply" -f "$work/m1000.sql")")
  [ "$("$psql" -X -At -d "${admin%/*}/bench_apply" -c 'SELECT version_num FROM alembic_version')" = r1000 ] || {
    echo "pooler_bench: the psql baseline did not reach r1000" >&2
    exit 1
  }
done
s=$(printf '%s\n' "${s_runs[@]}" | median)
p=$(printf '%s\n' "${p_runs[@]}" | median)
echo "apply 1000 revisions through PgBouncer (transaction mode): sluice --lock-mode=lease ${s} ms, psql ${p} ms (one transaction per revision), ratio $(ratio_of "$s" "$p") (target <= 1.3)"
echo "  each repetition (ms): sluice ${s_runs[*]}; psql ${p_runs[*]}; median of the paired ratios $(paired_ratio "${s_runs[*]}" "${p_runs[*]}")"

# 2. Sixteen runners vs one on 100 pending revisions, all through the transaction pooler.
make_revisions "$work/m100" 100
one=()
sixteen=()
floor=()
for _ in $(seq "$reps"); do
  one+=("$(time_sluice "$work/m100" bench_many)")
  check_applied bench_many r0100 100
  sixteen+=("$(runner_with_company "$sluice" upgrade head --migrations "$work/m100" \
    --database-url "$pooled_base/bench_many" --lock-mode=lease)")
  check_applied bench_many r0100 100
  floor+=("$(runner_with_company "$select_client" "$pooled_base/bench_many" 'SELECT 1 FROM pg_class LIMIT 1')")
done
o=$(printf '%s\n' "${one[@]}" | median)
x=$(printf '%s\n' "${sixteen[@]}" | median)
f=$(printf '%s\n' "${floor[@]}" | median)
echo "100 pending revisions through PgBouncer (transaction mode), --lock-mode=lease: 1 runner ${o} ms, 16 runners ${x} ms, ratio $(ratio_of "$x" "$o") (target <= 1.3)"
echo "  floor: 1 runner + 15 bare libpq clients through the pooler ${f} ms (ratio $(ratio_of "$f" "$o"))"
echo "  each repetition (ms): 1 runner ${one[*]}; 16 runners ${sixteen[*]}; floor ${floor[*]}; median of the paired ratios: 16 runners $(paired_ratio "${sixteen[*]}" "${one[*]}"), floor $(paired_ratio "${floor[*]}" "${one[*]}")"
