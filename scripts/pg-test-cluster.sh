#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests: trust authentication, 127.0.0.1 only, fsync off.
#
#   scripts/pg-test-cluster.sh start   # initdb (first time) and start; prints SLUICE_TEST_PG_DSN=...
#   scripts/pg-test-cluster.sh env     # prints SLUICE_TEST_PG_DSN=... without starting anything
#   scripts/pg-test-cluster.sh status  # exit 0 when the cluster runs
#   scripts/pg-test-cluster.sh stop    # stops the server and deletes the cluster directory
#   scripts/pg-test-cluster.sh pause   # stops the server and keeps its data (start resumes it)
#
# Use it as: eval "$(scripts/pg-test-cluster.sh start)"; export SLUICE_TEST_PG_DSN
# Only the DSN line goes to stdout; progress and errors go to stderr.
#
# Environment: SLUICE_PG_DIR (default /tmp/sluice-pg), SLUICE_PG_PORT (default 54329),
# SLUICE_PG_BIN (default /usr/lib/postgresql/15/bin), SLUICE_PG_USER (the system user that runs
# the server when this script runs as root; default sluicetest, created when missing).
# It never installs PostgreSQL: install Debian's postgresql package first (scripts/install-deps.sh).
set -euo pipefail

dir=${SLUICE_PG_DIR:-/tmp/sluice-pg}
port=${SLUICE_PG_PORT:-54329}
bin=${SLUICE_PG_BIN:-/usr/lib/postgresql/15/bin}
run_user=${SLUICE_PG_USER:-sluicetest}
data=$dir/data
logfile=$dir/server.log
dsn="postgresql://postgres@127.0.0.1:${port}/postgres"

say() { echo "pg-test-cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

case "$port" in
  '' | *[!0-9]*) die "SLUICE_PG_PORT must be a number, not '$port'" ;;
esac
case "$dir" in
  /*) ;;
  *) dir=$(pwd)/$dir && data=$dir/data && logfile=$dir/server.log ;;
esac

need_binaries() {
  local tool
  for tool in initdb pg_ctl pg_isready postgres; do
    [ -x "$bin/$tool" ] || die "PostgreSQL 15 is not installed ($bin/$tool is missing): install Debian's postgresql package (apt-get install postgresql), e.g. with scripts/install-deps.sh"
  done
}

# Runs a command as the cluster's owner: this user, or $run_user when running as root.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$run_user" -- "$@"
  else
    su -s /bin/sh "$run_user" -c "$(printf '%q ' "$@")"
  fi
}

ensure_run_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id -u "$run_user" >/dev/null 2>&1; then
    say "creating system user $run_user (initdb refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$run_user" ||
      die "cannot create user $run_user"
  fi
}

running() {
  [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

print_dsn() { echo "SLUICE_TEST_PG_DSN=$dsn"; }

start() {
  need_binaries
  ensure_run_user
  if running; then
    say "already running in $dir on 127.0.0.1:$port"
    print_dsn
    return 0
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$run_user" "$dir"
    # The owner must reach the directory through its parents (e.g. a private $HOME).
    as_owner test -w "$dir" || die "$run_user cannot write $dir: choose another SLUICE_PG_DIR"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initdb in $data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      die "initdb failed"
    }
    cat >>"$data/postgresql.conf" <<EOF
# pg-test-cluster.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
log_min_error_statement = panic
EOF
  fi
  say "starting on 127.0.0.1:$port"
  if ! as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -o "-p $port" -w -t 60 start >/dev/null; then
    tail -n 30 "$logfile" >&2 || true
    die "the server did not start (is port $port taken? set SLUICE_PG_PORT)"
  fi
  local i
  for i in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      print_dsn
      return 0
    fi
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2 || true
  die "the server does not accept connections on 127.0.0.1:$port"
}

pause() {
  need_binaries
  ensure_run_user
  if running; then
    say "stopping the server in $dir (data kept)"
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
  fi
}

stop() {
  if [ -f "$data/PG_VERSION" ]; then
    need_binaries
    ensure_run_user
    if running; then
      say "stopping the server in $dir"
      as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
    fi
  fi
  if [ -d "$dir" ]; then
    # Only remove what looks like ours.
    if [ -z "$(ls -A "$dir")" ] || [ -f "$data/PG_VERSION" ] || [ -f "$dir/initdb.log" ]; then
      rm -rf "$dir"
    else
      say "left $dir alone: it does not look like a pg-test-cluster directory"
    fi
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  pause) pause ;;
  env) print_dsn ;;
  status)
    if running; then
      say "running in $dir on 127.0.0.1:$port"
      print_dsn
    else
      say "not running ($dir)"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|pause|env|status" >&2
    exit 2
    ;;
esac
