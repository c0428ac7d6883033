# shellcheck shell=bash disable=SC2154
# Helpers shared by the shell benches (db_bench.sh, pooler_bench.sh, startup_bench.sh). Source it after setting
# `psql` (the real client binary), `admin` (an admin DSN of the bench's server) and `work` (a
# scratch directory).

now_ns() { date +%s%N; }

# Prints the median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Prints $1 / $2 with two decimals.
ratio_of() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }

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
