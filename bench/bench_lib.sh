# shellcheck shell=bash disable=SC2154
# Helpers shared by the shell benches (db_bench.sh, pooler_bench.sh, startup_bench.sh). Source it after setting
# `psql` (the real client binary), `admin` (an admin DSN of the bench's server) and `work` (a
# scratch directory).

now_ns() { date +%s%N; }

# Prints the median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Prints $1 / $2 with two decimals.
ratio_of() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }

# Prints the median of the paired ratios A[i] / B[i] of two space-separated lists of timings
# taken side by side, repetition by repetition, with two decimals. On a machine whose speed drifts
# between repetitions (a shared VM), the pairs cancel the drift that a ratio of medians keeps.
paired_ratio() {  # "A1 A2 ..." "B1 B2 ..."
  paste -d' ' <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") | awk '{printf "%.6f\n", $1 / $2}' |
    median | xargs printf '%.2f'
}

# Runs a command with its output discarded; prints its peak resident memory in KiB.
peak_kib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

# Drops (with its sessions) and creates database $1 on the bench's server.
fresh_db() {
  "$psql" -X -q -d "$admin" -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

# Writes COUNT linear revisions r0001..rNNNN into DIR, one file each; each creates table tNNNN
# and inserts a row.
make_revisions() {  # DIR COUNT
  local i parent
  mkdir -p "$1"
  for i in $(seq 1 "$2"); do
    parent=null
    [ "$i" -gt 1 ] && parent=$(printf 'r%04d' $((i - 1)))
    printf 'revision: r%04d\ndown_revision: %s\ndescription: table %d\nupgrade: |\n  CREATE TABLE t%04d (id int PRIMARY KEY, name text);\n  INSERT INTO t%04d VALUES (1, '"'"'x'"'"');\n' \
      "$i" "$parent" "$i" "$i" "$i" > "$1/r$(printf %04d "$i").yaml"
  done
}

# Writes to FILE the SQL of make_revisions' COUNT revisions as psql would run them without sluice:
# Alembic's version table, then each revision in a transaction of its own (BEGIN ... COMMIT)
# together with its version bump.
make_revisions_sql() {  # FILE COUNT
  local i
  {
    echo "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
    for i in $(seq 1 "$2"); do
      printf "BEGIN;\nCREATE TABLE t%04d (id int PRIMARY KEY, name text);\nINSERT INTO t%04d VALUES (1, 'x');\n" "$i" "$i"
      if [ "$i" -eq 1 ]; then
        echo "INSERT INTO alembic_version VALUES ('r0001');"
      else
        printf "UPDATE alembic_version SET version_num = 'r%04d' WHERE version_num = 'r%04d';\n" "$i" $((i - 1))
      fi
      echo "COMMIT;"
    done
  } > "$1"
}

# Runs a command with its output discarded; prints its wall time in milliseconds.
time_ms() {
  local start end
  start=$(now_ns)
  "$@" >/dev/null 2>&1
  end=$(now_ns)
  echo $(((end - start) / 1000000))
}

# The same in microseconds.
time_us() {
  local start end
  start=$(now_ns)
  "$@" >/dev/null 2>&1
  end=$(now_ns)
  echo $(((end - start) / 1000))
}

# Runs a command with its output discarded and fails the bench when it fails: a timing of a run
# that failed is worthless.
must() {
  if ! "$@" >/dev/null 2>"$work/must.err"; then
    echo "bench: failed: $*" >&2
    cat "$work/must.err" >&2
    exit 1
  fi
}

# Writes to FILE the psql script of one plain runner of make_revisions' COUNT revisions: the floor
# a migration runner is measured against when many start at once. It takes a blocking
# `pg_advisory_lock`, creates Alembic's version table and a history table (bench_history: one row
# per applied revision) when missing, reads the head once, then runs make_revisions_sql's
# revisions that are past it, each in its own transaction with its version bump and history row
# (psql's \if on one \gset query: no round trip per revision it skips), and unlocks.
make_psql_runner() {  # FILE COUNT
  local i
  make_revisions_sql "$1.sql" "$2"
  {
    echo '\set ON_ERROR_STOP 1'
    echo 'SELECT pg_advisory_lock(4242);'
    sed -n '1s/^CREATE TABLE alembic_version/CREATE TABLE IF NOT EXISTS alembic_version/p' "$1.sql"
    echo 'CREATE TABLE IF NOT EXISTS bench_history (revision text NOT NULL, pid int NOT NULL DEFAULT pg_backend_pid());'
    printf 'SELECT '
    for i in $(seq 1 "$2"); do
      [ "$i" -gt 1 ] && printf ', '
      printf "v < 'r%04d' AS p%04d" "$i" "$i"
    done
    echo " FROM (SELECT coalesce(max(version_num), '') AS v FROM alembic_version) AS head \gset"
    # Each BEGIN ... COMMIT block of the SQL is one revision, in order.
    awk 'NR > 1 && /^BEGIN;$/ { n++; printf "\\if :p%04d\n", n }
         NR > 1 && /^COMMIT;$/ { printf "INSERT INTO bench_history (revision) VALUES (\x27r%04d\x27);\n", n }
         NR > 1 { print }
         NR > 1 && /^COMMIT;$/ { print "\\endif" }' "$1.sql"
    echo 'SELECT pg_advisory_unlock(4242);'
  } >"$1"
  rm -f "$1.sql"
}

# Starts COUNT copies of a command at once (copy N with HOSTNAME=pod-N, its output in
# $work/at_once.N.log) and waits for them all; prints "WALL_MS FAILED", FAILED being how many
# exited non-zero.
at_once() {  # COUNT COMMAND...
  local count=$1 start end i pid failed=0 pids=()
  shift
  start=$(now_ns)
  for i in $(seq 1 "$count"); do
    HOSTNAME=pod-$i "$@" >"$work/at_once.$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  end=$(now_ns)
  echo "$(((end - start) / 1000000)) $failed"
}

# Prints "TABLES ROWS" for the database at URL: how many of make_revisions' tables tNNNN it holds,
# and their rows in all. Each revision creates one table and inserts one row, and a second run of
# one fails (the table exists), so a database where each of COUNT revisions ran once prints
# "COUNT COUNT".
revision_tables() {  # URL
  "$psql" -X -At -d "$1" -c "SELECT count(*) || ' ' || coalesce(sum((xpath('/row/c/text()',
      query_to_xml(format('SELECT count(*) AS c FROM public.%I', relname), false, true, '')))[1]::text::int), 0)
    FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9]{4}\$' AND relnamespace = 'public'::regnamespace"
}

# Checks that each of make_revisions' COUNT revisions ran exactly once in the database at URL:
# VERSION_SQL prints EXPECTED (the head), revision_tables prints "COUNT COUNT", and HISTORY_SQL
# (skipped when empty: a tool that keeps no history) prints "COUNT COUNT" (rows, distinct
# revisions). Prints "yes", or "no (what was found)" and returns 1.
applied_once() {  # URL COUNT VERSION_SQL EXPECTED HISTORY_SQL
  local version tables history=-
  version=$("$psql" -X -At -d "$1" -c "$3" 2>/dev/null) || version="(unreadable)"
  tables=$(revision_tables "$1")
  if [ -n "$5" ]; then history=$("$psql" -X -At -d "$1" -c "$5" 2>/dev/null) || history="(unreadable)"; fi
  if [ "$version" = "$4" ] && [ "$tables" = "$2 $2" ] && { [ -z "$5" ] || [ "$history" = "$2 $2" ]; }; then
    echo yes
    return 0
  fi
  echo "no (head '$version', tables and rows '$tables', history rows and revisions '$history')"
  return 1
}
