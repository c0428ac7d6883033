#!/usr/bin/env bash
# sluice against what users run instead, on the same SQL, side by side in one command, on a
# throwaway PostgreSQL 15 (127.0.0.1; scripts/pg-test-cluster.sh's settings):
#   psql     the floor: the real client binary /usr/lib/postgresql/15/bin/psql (never the Perl
#            wrapper on the PATH, which adds 30-40 ms to every call);
#   sluice   the static binary the image ships: the /sluice of scripts/image-rootfs.sh's folder
#            (stripped), built from STATIC_SLUICE;
#   alembic  Debian 12's python3-alembic with python3-psycopg2, run as /usr/bin/python3 -m alembic;
#   dbmate   the binary of the npm package dbmate (pinned in install-bench-deps.sh), run directly.
# Measured, each contender in turn within every repetition (so load on the machine falls on all
# alike), medians, every figure also as a ratio to psql's in the same run:
#   1. start-up: `version` (psql --version, sluice version, alembic --version, dbmate --version);
#   2. no-op on an up-to-date database of 100 revisions (psql: `SELECT 1`; sluice: upgrade head;
#      alembic: upgrade head; dbmate: migrate);
#   3. applying 100 and 1,000 revisions from an empty database (psql: one process running
#      make_revisions_sql's script: each revision in its own transaction with its version bump);
#   4. sixteen runners started at once on 100 pending revisions (psql: bench_lib.sh's
#      make_psql_runner, pg_advisory_lock then the missing revisions): wall time, how many runners
#      exited non-zero, and whether every revision was applied exactly once;
#   5. peak RSS (GNU time) of the no-op and of applying 1,000;
#   6. what each needs on disk (see "Size on disk" below).
# The revisions are make_revisions' (each creates a table and inserts a row); the Alembic project
# and dbmate's migration folder are generated from make_revisions_sql's SQL, one revision per
# BEGIN ... COMMIT block, with the same ids (Alembic) or their numbers (dbmate). Alembic runs with
# transaction_per_migration=True, so that all four commit each revision with its version bump
# (Alembic's own template runs the whole upgrade in one transaction); dbmate does so by default.
# Every single run is checked (exit 0, each revision applied once) so that a failed run is never
# timed; the sixteen-runner runs are reported as they come out, failures included.
#
# Usage: bench/compare_bench.sh [STATIC_SLUICE]   (default build-static/cmd/sluice/sluice;
#        builds nothing: scripts/build-static.sh build-static first)
# Environment: REPS (default 5: repetitions of 3 and 4, and of the RSS runs), RUNS (default 20:
# runs of 1 and 2), SLUICE_PG_DIR (default /tmp/sluice-compare-bench-pg), SLUICE_PG_PORT (default
# 54334). The cluster is stopped and deleted at the end. Installs what it needs with
# bench/install-bench-deps.sh (root, or already installed). Prints a Markdown report on stdout,
# progress on stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
static=${1:-$root/build-static/cmd/sluice/sluice}
reps=${REPS:-5}
runs=${RUNS:-20}
psql=/usr/lib/postgresql/15/bin/psql
python=/usr/bin/python3
for value in "$reps" "$runs"; do
  case "$value" in '' | *[!0-9]* | 0) echo "compare_bench: REPS and RUNS must be positive numbers" >&2; exit 2 ;; esac
done
[ -x "$static" ] || { echo "compare_bench: no static sluice at $static: scripts/build-static.sh build-static" >&2; exit 1; }
[ -x "$psql" ] || { echo "compare_bench: $psql is missing (Debian's postgresql-client-15)" >&2; exit 1; }
dbmate=$("$root/bench/install-bench-deps.sh")

work=$(mktemp -d /tmp/sluice-compare-bench.XXXXXX)
chmod 755 "$work"
export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-compare-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54334}
export SLUICE_PGBOUNCER=0
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
admin=$SLUICE_TEST_PG_DSN
base_url=${admin%/*}

# shellcheck source=bench/bench_lib.sh
. "$root/bench/bench_lib.sh"
say() { echo "compare_bench: $*" >&2; }

# The image's root filesystem; its /sluice (a copy: see startup_bench.sh on fresh files' RSS).
"$root/scripts/image-rootfs.sh" "$work/rootfs" "$static" >/dev/null
cp "$work/rootfs/sluice" "$work/sluice"
sluice=$work/sluice

# --- The contenders' projects, from the same SQL ------------------------------------------------

# Writes the Alembic project of make_revisions_sql's COUNT revisions into DIR: alembic.ini, env.py
# (connects to $BENCH_DATABASE_URL, one transaction per revision) and versions/rNNNN.py.
make_alembic_project() {  # DIR COUNT
  mkdir -p "$1/versions"
  printf '[alembic]\nscript_location = %%(here)s\n' >"$1/alembic.ini"
  cat >"$1/env.py" <<'PY'
import os

from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(os.environ["BENCH_DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
PY
  make_revisions_sql "$1/all.sql" "$2"
  # Each BEGIN ... COMMIT block is revision n; its statements but the version bump are its SQL.
  awk -v dir="$1/versions" '
    /^BEGIN;$/ { n++; sql = ""; next }
    /alembic_version/ { next }
    /^COMMIT;$/ {
      file = sprintf("%s/r%04d.py", dir, n)
      parent = n == 1 ? "None" : sprintf("\"r%04d\"", n - 1)
      printf "\"\"\"table %d\"\"\"\nfrom alembic import op\n\nrevision = \"r%04d\"\ndown_revision = %s\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    op.get_bind().exec_driver_sql(\"\"\"%s\"\"\")\n\n\ndef downgrade():\n    pass\n", n, n, parent, sql > file
      close(file)
      next
    }
    n > 0 { sql = sql $0 "\n" }' "$1/all.sql"
  rm "$1/all.sql"
}

# Writes dbmate's migrations of make_revisions_sql's COUNT revisions into DIR: NNNN_rNNNN.sql.
make_dbmate_migrations() {  # DIR COUNT
  mkdir -p "$1"
  make_revisions_sql "$1/all.sql" "$2"
  awk -v dir="$1" '
    /^BEGIN;$/ { n++; sql = ""; next }
    /alembic_version/ { next }
    /^COMMIT;$/ {
      file = sprintf("%s/%04d_r%04d.sql", dir, n, n)
      printf "-- migrate:up\n%s\n-- migrate:down\n", sql > file
      close(file)
      next
    }
    n > 0 { sql = sql $0 "\n" }' "$1/all.sql"
  rm "$1/all.sql"
}

for count in 100 1000; do
  make_revisions "$work/m$count" "$count"
  make_revisions_sql "$work/psql$count.sql" "$count"
  make_alembic_project "$work/alembic$count" "$count"
  make_dbmate_migrations "$work/dbmate$count" "$count"
done
make_psql_runner "$work/runner100.sql" 100

# --- How each contender runs --------------------------------------------------------------------

tools=(psql sluice alembic dbmate)

version_cmd() {  # TOOL
  case "$1" in
    psql) echo "$psql" --version ;;
    sluice) echo "$sluice" version ;;
    alembic) echo "$python" -m alembic --version ;;
    dbmate) echo "$dbmate" --version ;;
  esac
}

# Sets `cmd` to TOOL's upgrade of COUNT revisions on database DB; psql runs make_revisions_sql's
# script (MODE apply), its runner script (MODE runner) or SELECT 1 (MODE noop).
set_cmd() {  # TOOL MODE COUNT DB
  local url=$base_url/$4
  case "$1" in
    psql)
      case "$2" in
        apply) cmd=("$psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$work/psql$3.sql") ;;
        runner) cmd=("$psql" -X -q -d "$url" -f "$work/runner$3.sql") ;;
        noop) cmd=("$psql" -X -q -d "$url" -c 'SELECT 1') ;;
      esac ;;
    sluice) cmd=("$sluice" upgrade head --migrations "$work/m$3" --database-url "$url") ;;
    alembic) cmd=(env "BENCH_DATABASE_URL=$url" "$python" -m alembic -c "$work/alembic$3/alembic.ini" upgrade head) ;;
    dbmate) cmd=("$dbmate" --url "$url?sslmode=disable" --migrations-dir "$work/dbmate$3" --no-dump-schema migrate) ;;
  esac
}
run_tool() {  # TOOL MODE COUNT DB
  local cmd
  set_cmd "$@"
  "${cmd[@]}"
}

# Prints whether each of COUNT revisions was applied exactly once on DB by TOOL (applied_once);
# MODE runner: psql ran make_psql_runner's script, which keeps a history.
check_tool() {  # TOOL COUNT DB [MODE]
  local url=$base_url/$3 head
  head=$(printf 'r%04d' "$2")
  case "$1" in
    psql) applied_once "$url" "$2" "SELECT string_agg(version_num, ',') FROM alembic_version" "$head" \
      "$( [ "${4:-}" = runner ] && echo "SELECT count(*) || ' ' || count(DISTINCT revision) FROM bench_history" )" ;;
    sluice) applied_once "$url" "$2" "SELECT string_agg(version_num, ',') FROM alembic_version" "$head" \
      "SELECT count(*) || ' ' || count(DISTINCT revision) FROM sluice_history WHERE outcome = 'applied'" ;;
    alembic) applied_once "$url" "$2" "SELECT string_agg(version_num, ',') FROM alembic_version" "$head" "" ;;
    dbmate) applied_once "$url" "$2" "SELECT max(version) FROM schema_migrations" "${head#r}" \
      "SELECT count(*) || ' ' || count(DISTINCT version) FROM schema_migrations" ;;
  esac
}

# Runs one timed upgrade (MODE apply) of COUNT revisions by TOOL on a fresh database, checked;
# appends "WALL_MS PEAK_KIB" to FILE. GNU time wraps every contender alike, for the peak RSS.
timed_apply() {  # TOOL COUNT FILE
  local db=cmp_$1 start end verdict
  fresh_db "$db"
  start=$(now_ns)
  local cmd
  set_cmd "$1" apply "$2" "$db"
  if ! /usr/bin/time -f %M -o "$work/rss" "${cmd[@]}" >"$work/out" 2>&1; then
    say "$1 failed applying $2 revisions:"; cat "$work/out" >&2; exit 1
  fi
  end=$(now_ns)
  if ! verdict=$(check_tool "$1" "$2" "$db"); then
    say "$1 applying $2 revisions: applied exactly once: $verdict"; exit 1
  fi
  echo "$(((end - start) / 1000000)) $(tail -1 "$work/rss")" >>"$3"
}

field_median() {  # FILE FIELD
  awk -v f="$2" '{print $f}' "$1" | median
}

pg_version=$("$psql" -X -At -d "$admin" -c 'SHOW server_version')
say "$(nproc) cores, PostgreSQL $pg_version, REPS=$reps, RUNS=$runs"

# 1. Start-up.
say "start-up (version), $runs runs each"
for tool in "${tools[@]}"; do : >"$work/version.$tool"; done
read -r -a alembic_version_cmd <<<"$(version_cmd alembic)"
"${alembic_version_cmd[@]}" >/dev/null 2>&1  # byte-compiles nothing of ours; warms the page cache alike
for _ in $(seq "$runs"); do
  for tool in "${tools[@]}"; do
    read -r -a cmd <<<"$(version_cmd "$tool")"
    time_us "${cmd[@]}" >>"$work/version.$tool"
  done
done

# 2. No-op on 100 revisions, each tool on its own up-to-date database.
say "no-op on 100 revisions, $runs runs each"
for tool in "${tools[@]}"; do
  fresh_db "noop_$tool"
  must run_tool "$tool" apply 100 "noop_$tool"
  check_tool "$tool" 100 "noop_$tool" >/dev/null || { say "$tool: the no-op database is wrong"; exit 1; }
  must run_tool "$tool" noop 100 "noop_$tool"  # Alembic writes its versions' byte code here
  : >"$work/noop.$tool"
done
for _ in $(seq "$runs"); do
  for tool in "${tools[@]}"; do
    time_us run_tool "$tool" noop 100 "noop_$tool" >>"$work/noop.$tool"
  done
done
for tool in "${tools[@]}"; do
  : >"$work/noop_rss.$tool"
  set_cmd "$tool" noop 100 "noop_$tool"
  for _ in $(seq "$reps"); do peak_kib "${cmd[@]}" >>"$work/noop_rss.$tool"; done
done

# 3. Applying 100 and 1,000 revisions.
for count in 100 1000; do
  say "applying $count revisions, $reps runs each"
  for tool in "${tools[@]}"; do : >"$work/apply$count.$tool"; done
  for _ in $(seq "$reps"); do
    for tool in "${tools[@]}"; do timed_apply "$tool" "$count" "$work/apply$count.$tool"; done
  done
done

# 4. Sixteen runners at once on 100 pending revisions.
say "sixteen runners at once, $reps runs each"
for tool in "${tools[@]}"; do : >"$work/sixteen.$tool"; : >"$work/sixteen_errors.$tool"; done
for _ in $(seq "$reps"); do
  for tool in "${tools[@]}"; do
    fresh_db "many_$tool"
    mode=apply
    [ "$tool" = psql ] && mode=runner
    read -r wall failed < <(at_once 16 run_tool "$tool" "$mode" 100 "many_$tool")
    once=yes
    check_tool "$tool" 100 "many_$tool" "$mode" >"$work/verdict" || once=no
    echo "$wall $failed $once $(cat "$work/verdict")" >>"$work/sixteen.$tool"
    # The first error line of each failed runner, its variable parts (numbers, pids) kept.
    for i in $(seq 1 16); do
      grep -m1 -iE 'error|fatal|exception' "$work/at_once.$i.log" >>"$work/sixteen_errors.$tool" || true
    done
  done
done

# 6. Size on disk. sluice: the image's root filesystem (scripts/image-rootfs.sh), every file's
# size. All four: the files a no-op run and a `version` run open or execute (strace -f, openat and
# execve that succeeded; regular files only, the migrations and the bench's own files left out),
# each counted once at its real path: what an image of that tool must hold at the least.
opened_bytes() {  # TOOL
  local file mode cmd
  : >"$work/opened"
  for mode in noop version; do
    if [ "$mode" = noop ]; then set_cmd "$1" noop 100 "noop_$1"; else read -r -a cmd <<<"$(version_cmd "$1")"; fi
    strace -f -qq -e trace=openat,execve,open -e status=successful -o "$work/strace" "${cmd[@]}" >/dev/null 2>&1
    # execve("PATH", ...) and openat(..., "PATH", ...): the first quoted string of each line.
    sed -nE 's/^[0-9]+ +(execve|openat|open)\([^"]*"([^"]*)".*/\2/p' "$work/strace" >>"$work/opened"
  done
  sort -u "$work/opened" | while read -r file; do
    case "$file" in
      /proc/* | /sys/* | /dev/* | /usr/bin/env | /bin/env) continue ;;
      "$work"/m[0-9]* | "$work"/alembic[0-9]* | "$work"/dbmate[0-9]* | "$work"/psql[0-9]* | "$work"/runner*) continue ;;
    esac
    file=$(readlink -f "$file" 2>/dev/null) || continue
    if [ -f "$file" ]; then echo "$file"; fi
  done | sort -u | while read -r file; do stat -c %s "$file"; done | awk '{s += $1} END {print s + 0}'
}
say "size on disk"
rootfs_bytes=$(find "$work/rootfs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
for tool in "${tools[@]}"; do opened_bytes "$tool" >"$work/size.$tool"; done
dbmate_npm_bytes=$(find "$(dirname "$dbmate")/../../../.." -type f -printf '%s\n' | awk '{s += $1} END {print s}')

# --- The report ---------------------------------------------------------------------------------
mib() { awk "BEGIN {printf \"%.2f\", $1 / 1048576}"; }
ms_of_us() { awk "BEGIN {printf \"%.1f\", $1 / 1000}"; }
cell() {  # VALUE PSQL_VALUE FORMATTED
  echo "$3 ($(ratio_of "$1" "$2")x)"
}

# Read through the nameref in row(), which shellcheck does not follow.
declare -A v n a100 a1000 rss_noop rss_apply size
# shellcheck disable=SC2034
for tool in "${tools[@]}"; do
  v[$tool]=$(median <"$work/version.$tool")
  n[$tool]=$(median <"$work/noop.$tool")
  a100[$tool]=$(field_median "$work/apply100.$tool" 1)
  a1000[$tool]=$(field_median "$work/apply1000.$tool" 1)
  rss_noop[$tool]=$(median <"$work/noop_rss.$tool")
  rss_apply[$tool]=$(field_median "$work/apply1000.$tool" 2)
  size[$tool]=$(cat "$work/size.$tool")
done

echo "## sluice, psql, Alembic and dbmate on the same SQL"
echo
echo "Taken $(date -u +%Y-%m-%dT%H:%MZ) by \`bench/compare_bench.sh\` (REPS=$reps, RUNS=$runs) on $(nproc) cores" \
  "($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "Versions: sluice \`$("$sluice" version 2>&1 | head -1)\` (static, stripped: the image's \`/sluice\`, $(stat -c %s "$sluice") bytes);" \
  "psql \`$("$psql" --version)\`; Alembic $("$python" -c 'import alembic; print(alembic.__version__)')" \
  "(SQLAlchemy $("$python" -c 'import sqlalchemy; print(sqlalchemy.__version__)'), psycopg2 $("$python" -c 'import psycopg2; print(psycopg2.__version__.split()[0])')," \
  "Python $("$python" -c 'import platform; print(platform.python_version())'), Debian's packages); dbmate \`$("$dbmate" --version)\` (npm)."
echo
echo "PostgreSQL $pg_version on 127.0.0.1 (scripts/pg-test-cluster.sh), settings not at their defaults:" \
  "$("$psql" -X -At -d "$admin" -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE source NOT IN ('default', 'override', 'client') AND name NOT LIKE 'lc_%' AND name <> 'DateStyle'")."
echo
echo "Wall times are medians; (N.NNx) is the ratio to psql's figure of the same run."
echo
echo "| | psql | sluice | Alembic | dbmate |"
echo "| --- | --- | --- | --- | --- |"
row() {  # LABEL ARRAY FORMAT_FN
  local -n values=$2
  local line tool
  line="| $1 | $($3 "${values[psql]}")"
  for tool in sluice alembic dbmate; do line+=" | $(cell "${values[$tool]}" "${values[psql]}" "$($3 "${values[$tool]}")")"; done
  echo "$line |"
}
ms_from_us() { echo "$(ms_of_us "$1") ms"; }
ms_plain() { echo "$1 ms"; }
mib_of_kib() { echo "$(awk "BEGIN {printf \"%.1f\", $1 / 1024}") MiB"; }
mib_of_bytes() { echo "$(mib "$1") MiB"; }
row "start-up: \`version\`" v ms_from_us
row "no-op, 100 revisions (psql: \`SELECT 1\`)" n ms_from_us
row "applying 100 revisions" a100 ms_plain
row "applying 1,000 revisions" a1000 ms_plain
row "peak RSS, no-op" rss_noop mib_of_kib
row "peak RSS, applying 1,000" rss_apply mib_of_kib
row "on disk: files a no-op and \`version\` open" size mib_of_bytes
echo
echo "Sixteen runners started at once on 100 pending revisions, each run on a fresh database:"
echo
echo "| | wall time, median | ratio to psql | median of the paired ratios | wall time per run (ms) | runners that exited non-zero, per run | each revision applied exactly once |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
p16=$(field_median "$work/sixteen.psql" 1)
p16_runs=$(awk '{print $1}' "$work/sixteen.psql" | paste -sd' ' -)
for tool in "${tools[@]}"; do
  w=$(field_median "$work/sixteen.$tool" 1)
  runs=$(awk '{print $1}' "$work/sixteen.$tool" | paste -sd' ' -)
  failures=$(awk '{print $2}' "$work/sixteen.$tool" | paste -sd, -)
  yes=$(awk '$3 == "yes"' "$work/sixteen.$tool" | wc -l)
  echo "| $tool | $w ms | $(ratio_of "$w" "$p16")x | $(paired_ratio "$runs" "$p16_runs")x | ${runs// /, } | $failures | $yes of $reps runs |"
done
echo
for tool in "${tools[@]}"; do
  if [ -s "$work/sixteen_errors.$tool" ]; then
    echo "$tool's runners' errors (each distinct first error line, with how many runners in all $reps runs printed it):"
    echo
    sed -E 's/^[0-9T:.-]+Z? *//; s/[0-9]{4,}/N/g' "$work/sixteen_errors.$tool" | sort | uniq -c | sort -rn | head -5 |
      awk '{c = $1; $1 = ""; printf "- %d x `%s`\n", c, substr($0, 2)}'
    echo
  fi
  if grep -q ' no ' "$work/sixteen.$tool"; then
    echo "$tool's database after the runs where a revision was not applied exactly once:"
    echo
    grep ' no ' "$work/sixteen.$tool" | cut -d' ' -f4- | sort | uniq -c | awk '{c = $1; $1 = ""; printf "- %d x %s\n", c, substr($0, 2)}'
    echo
  fi
done
echo "Size on disk: sluice's image root filesystem (scripts/image-rootfs.sh: the stripped static binary," \
  "CA bundle, passwd, group) is $rootfs_bytes bytes ($(mib "$rootfs_bytes") MiB). dbmate's npm install" \
  "is $dbmate_npm_bytes bytes ($(mib "$dbmate_npm_bytes") MiB), nearly all its static binary. The table's" \
  "row counts each regular file that a no-op run and a \`version\` run of the tool open or execute" \
  "(strace -f, successful openat/execve, counted once at its real path; /proc, /sys, /dev, the" \
  "migrations and \`env\`, which starts Alembic with its URL, left out): the least an image of that tool must hold" \
  "(for Alembic: the Python interpreter, the standard library modules and packages it imports, SQLAlchemy," \
  "psycopg2 and libpq with their shared libraries; not the rest of a Python install)."
