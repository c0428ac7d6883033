#!/usr/bin/env bash
# Measures sluice against psql on a throwaway PostgreSQL (127.0.0.1), side by side:
#   1. a no-op `sluice upgrade head` on an up-to-date database of 100 revisions vs
#      `psql -c 'SELECT 1'` (median of RUNS each);
#   2. applying 1,000 small revisions from empty vs psql running the same SQL, one transaction per
#      revision, in one psql process (median of 3);
#   3. sixteen runners at once on 100 pending revisions vs one runner, and the machine's floor under
#      that figure (median of 3); then sixteen sluice runners vs sixteen plain psql runners started
#      at once (bench_lib.sh's make_psql_runner: pg_advisory_lock, read the head, apply what is
#      missing, unlock), each run checked: every revision applied exactly once (median of REPS,
#      default 3);
#   4. peak resident memory (/usr/bin/time) of the no-op and of the 1,000-revision run.
# Usage: bench/db_bench.sh [BUILD_DIR]   (builds nothing; run scripts/build.sh first)
#
# psql is the real client binary, never the `psql` on the PATH: that one is Debian's Perl wrapper
# (pg_wrapper), which adds 30-40 ms to every call and would flatter every ratio.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
sluice=$build/cmd/sluice/sluice
runs=${RUNS:-30}
psql=${PSQL:-/usr/lib/postgresql/15/bin/psql}
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$work"

export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54331}
export SLUICE_PGBOUNCER=${SLUICE_PGBOUNCER:-0} # PostgreSQL alone: no pooler in front of it
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
admin=$SLUICE_TEST_PG_DSN
base_url=${admin%/*}

# shellcheck source=bench/bench_lib.sh
. "$root/bench/bench_lib.sh"

echo "sluice bench: $(nproc) cores, PostgreSQL $("$psql" -X -At -d "$admin" -c 'SHOW server_version')"

# 1. No-op upgrade vs psql.
make_revisions "$work/m100" 100
fresh_db bench_noop
url=$base_url/bench_noop
"$sluice" upgrade head --migrations "$work/m100" --database-url "$url" >/dev/null 2>&1
sluice_times=$(for _ in $(seq "$runs"); do time_us "$sluice" upgrade head --migrations "$work/m100" --database-url "$url"; done | median)
psql_times=$(for _ in $(seq "$runs"); do time_us "$psql" -X -q -d "$url" -c 'SELECT 1'; done | median)
echo "no-op upgrade, 100 revisions: sluice ${sluice_times} us, psql ${psql_times} us, ratio $(awk "BEGIN {printf \"%.2f\", $sluice_times / $psql_times}") (target <= 1.5)"

# 2. 1,000 small revisions from empty.
make_revisions "$work/m1000" 1000
sql=$work/m1000.sql
make_revisions_sql "$sql" 1000
s_runs=(); p_runs=()
for _ in 1 2 3; do
  fresh_db bench_apply
  s_runs+=("$(time_ms "$sluice" upgrade head --migrations "$work/m1000" --database-url "$base_url/bench_apply")")
  fresh_db bench_apply
  p_runs+=("$(time_ms "$psql" -X -q -v ON_ERROR_STOP=1 -d "$base_url/bench_apply" -f "$sql")")
done
s=$(printf '%s\n' "${s_runs[@]}" | median); p=$(printf '%s\n' "${p_runs[@]}" | median)
echo "apply 1000 revisions: sluice ${s} ms, psql ${p} ms, ratio $(awk "BEGIN {printf \"%.2f\", $s / $p}") (target <= 2)"

# 3. Sixteen runners vs one, 100 pending revisions. Beside that figure, two floors: one runner
# with fifteen processes that do nothing (`true`), and with fifteen bare libpq clients that connect
# and run one query (pg_select_client): what fifteen more processes, and fifteen more
# connections, cost this machine before any runner logic runs.
runner_with_company() {  # COMMAND... (started fifteen times beside one runner); prints wall ms
  local start end pids=() i
  fresh_db bench_many
  start=$(now_ns)
  "$sluice" upgrade head --migrations "$work/m100" --database-url "$base_url/bench_many" >/dev/null 2>&1 &
  pids+=($!)
  for i in $(seq 1 15); do
    HOSTNAME=pod-$i "$@" >/dev/null 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(now_ns)
  echo $(((end - start) / 1000000))
}
one=(); sixteen=(); with_true=(); with_clients=()
for _ in 1 2 3; do
  fresh_db bench_many
  one+=("$(time_ms "$sluice" upgrade head --migrations "$work/m100" --database-url "$base_url/bench_many")")
  sixteen+=("$(runner_with_company "$sluice" upgrade head --migrations "$work/m100" --database-url "$base_url/bench_many")")
  with_true+=("$(runner_with_company true)")
  with_clients+=("$(runner_with_company "$build/bench/pg_select_client" "$base_url/bench_many" \
    'SELECT 1 FROM pg_class LIMIT 1')")
done
o=$(printf '%s\n' "${one[@]}" | median)
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $o}"; }
x=$(printf '%s\n' "${sixteen[@]}" | median)
echo "100 pending revisions: 1 runner ${o} ms, 16 runners ${x} ms, ratio $(ratio "$x") (target <= 1.3); median of the paired ratios $(paired_ratio "${sixteen[*]}" "${one[*]}")"
t=$(printf '%s\n' "${with_true[@]}" | median)
c=$(printf '%s\n' "${with_clients[@]}" | median)
echo "  floor: 1 runner + 15 \`true\` ${t} ms (ratio $(ratio "$t")); 1 runner + 15 bare libpq clients ${c} ms (ratio $(ratio "$c"))"

# Sixteen sluice runners vs sixteen plain psql runners, all started at once on 100 pending
# revisions; the two interleaved, each run on a fresh database and checked (every runner exited 0,
# the head is r0100, each revision's table and row exist once, 100 history rows of 100 revisions:
# sluice_history for sluice, bench_history for psql) so that a wrong run is never timed.
make_psql_runner "$work/runner100.sql" 100
sixteen_sluice=(); sixteen_psql=()
sixteen_checked() {  # HISTORY_SQL COMMAND...; prints wall ms
  local history=$1 wall failed verdict
  shift
  fresh_db bench_many
  read -r wall failed < <(at_once 16 "$@")
  verdict=$(applied_once "$base_url/bench_many" 100 "SELECT string_agg(version_num, ',') FROM alembic_version" r0100 "$history") || true
  if [ "$failed" != 0 ] || [ "$verdict" != yes ]; then
    echo "bench: sixteen runners of $1: $failed exited non-zero; applied exactly once: $verdict" >&2
    cat "$work"/at_once.*.log >&2
    exit 1
  fi
  echo "$wall"
}
for _ in $(seq "${REPS:-3}"); do
  sixteen_sluice+=("$(sixteen_checked "SELECT count(*) || ' ' || count(DISTINCT revision) FROM sluice_history WHERE outcome = 'applied'" \
    "$sluice" upgrade head --migrations "$work/m100" --database-url "$base_url/bench_many")")
  sixteen_psql+=("$(sixteen_checked "SELECT count(*) || ' ' || count(DISTINCT revision) FROM bench_history" \
    "$psql" -X -q -d "$base_url/bench_many" -f "$work/runner100.sql")")
done
xs=$(printf '%s\n' "${sixteen_sluice[@]}" | median); xp=$(printf '%s\n' "${sixteen_psql[@]}" | median)
echo "16 runners at once, 100 pending revisions: sluice ${xs} ms, psql ${xp} ms, ratio $(ratio_of "$xs" "$xp") (target <= 1.1); each applied exactly once"
echo "  each repetition (ms): sluice ${sixteen_sluice[*]}; psql ${sixteen_psql[*]}; median of the paired ratios $(paired_ratio "${sixteen_sluice[*]}" "${sixteen_psql[*]}")"

# 4. Peak memory.
rss_noop=$(peak_kib "$sluice" upgrade head --migrations "$work/m100" --database-url "$url")
fresh_db bench_apply
rss_apply=$(peak_kib "$sluice" upgrade head --migrations "$work/m1000" --database-url "$base_url/bench_apply")
echo "peak RSS: no-op ${rss_noop} KiB, apply 1000 ${rss_apply} KiB (target < 20480 KiB)"
