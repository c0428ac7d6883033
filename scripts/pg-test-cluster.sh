#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests: trust authentication, 127.0.0.1 only, fsync off;
# and in front of it two PgBouncer instances, one in transaction pooling mode and one in session
# pooling mode, for the tests of sluice behind a connection pooler.
#
#   scripts/pg-test-cluster.sh start   # initdb (first time) and start all three; prints the DSNs
#   scripts/pg-test-cluster.sh env     # prints the DSNs without starting anything
#   scripts/pg-test-cluster.sh status  # exit 0 when the cluster and both poolers run; prints the DSNs
#   scripts/pg-test-cluster.sh stop    # stops everything and deletes the cluster directory
#   scripts/pg-test-cluster.sh pause   # stops everything and keeps the data (start resumes it)
#   scripts/pg-test-cluster.sh restart-pgbouncer [transaction|session]
#                                      # stops one pooler (both without an argument) at once,
#                                      # dropping its clients, and starts it again
#   scripts/pg-test-cluster.sh restart-server
#                                      # stops PostgreSQL (fast: its sessions end) and starts it
#                                      # again; the poolers keep running in front of it
#
# Use it as: eval "$(scripts/pg-test-cluster.sh start)"
#            export SLUICE_TEST_PG_DSN SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN SLUICE_TEST_PGBOUNCER_SESSION_DSN
# Only these lines go to stdout, in this order; progress and errors go to stderr:
#   SLUICE_TEST_PG_DSN=postgresql://postgres@127.0.0.1:PORT/postgres
#   SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN=postgresql://postgres@127.0.0.1:PORT+1/postgres
#   SLUICE_TEST_PGBOUNCER_SESSION_DSN=postgresql://postgres@127.0.0.1:PORT+2/postgres
#
# Environment: SLUICE_PG_DIR (default /tmp/sluice-pg), SLUICE_PG_PORT (default 54329),
# SLUICE_PG_BIN (default /usr/lib/postgresql/15/bin), SLUICE_PG_USER (the system user that runs
# the server and the poolers when this script runs as root; default sluicetest, created when
# missing), SLUICE_PGBOUNCER_TRANSACTION_PORT (default SLUICE_PG_PORT+1),
# SLUICE_PGBOUNCER_SESSION_PORT (default SLUICE_PG_PORT+2), SLUICE_PGBOUNCER_BIN (default
# /usr/sbin/pgbouncer), SLUICE_PGBOUNCER=0 (no poolers: start, stop and print only PostgreSQL).
#
# The poolers (Debian 12's PgBouncer 1.18) keep PgBouncer's defaults but for what a test setup
# needs: listen on 127.0.0.1 only, no Unix socket, auth_type trust (the cluster trusts too; the
# user must still be in the auth file, which names postgres), every database name forwarded to the
# cluster (`* =`), max_client_conn 400, default_pool_size 20, and extra_float_digits ignored in the
# startup packet. In particular they refuse an `options` startup parameter, as PgBouncer's default
# configuration does, and in transaction mode they keep no named prepared statements. Each has its
# config, pidfile and log in $SLUICE_PG_DIR/pgbouncer-{transaction,session}/.
# It never installs PostgreSQL or PgBouncer: install Debian's postgresql and pgbouncer packages
# first (scripts/install-deps.sh).
set -euo pipefail

dir=${SLUICE_PG_DIR:-/tmp/sluice-pg}
port=${SLUICE_PG_PORT:-54329}
bin=${SLUICE_PG_BIN:-/usr/lib/postgresql/15/bin}
run_user=${SLUICE_PG_USER:-sluicetest}
bouncer_bin=${SLUICE_PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
with_bouncers=${SLUICE_PGBOUNCER:-1}
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
transaction_port=${SLUICE_PGBOUNCER_TRANSACTION_PORT:-$((port + 1))}
session_port=${SLUICE_PGBOUNCER_SESSION_PORT:-$((port + 2))}
case "$transaction_port:$session_port" in
  *[!0-9:]* | :* | *:) die "SLUICE_PGBOUNCER_TRANSACTION_PORT and SLUICE_PGBOUNCER_SESSION_PORT must be numbers, not '$transaction_port' and '$session_port'" ;;
esac
case "$with_bouncers" in
  0 | 1) ;;
  *) die "SLUICE_PGBOUNCER must be 1 (start the poolers; the default) or 0 (PostgreSQL alone), not '$with_bouncers'" ;;
esac
need_binaries() {
  local tool
  for tool in initdb pg_ctl pg_isready postgres psql; do
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

# PgBouncer: one instance per pooling mode, each with its files in $dir/pgbouncer-MODE/.
bouncer_modes=(transaction session)

bouncer_port() {
  case "$1" in
    transaction) echo "$transaction_port" ;;
    session) echo "$session_port" ;;
    *) die "unknown pooling mode '$1': transaction or session" ;;
  esac
}

bouncer_dir() { echo "$dir/pgbouncer-$1"; }

bouncer_dsn() { echo "postgresql://postgres@127.0.0.1:$(bouncer_port "$1")/postgres"; }

need_pgbouncer() {
  [ -x "$bouncer_bin" ] || die "PgBouncer is not installed ($bouncer_bin is missing): install Debian's pgbouncer package (apt-get install pgbouncer), e.g. with scripts/install-deps.sh; or set SLUICE_PGBOUNCER=0 to run PostgreSQL alone (the pooler tests then fail)"
}

# Prints the pid of the running PgBouncer of pooling mode $1; fails when none runs.
bouncer_pid() {
  local pidfile pid
  pidfile=$(bouncer_dir "$1")/pgbouncer.pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  case "$pid" in
    '' | *[!0-9]*) return 1 ;;
  esac
  # A stale pidfile may name a pid that another program has taken since.
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pgbouncer ] || return 1
  echo "$pid"
}

write_bouncer_config() {
  local mode=$1 bdir
  bdir=$(bouncer_dir "$mode")
  mkdir -p "$bdir"
  # auth_type trust still looks the user up in the auth file.
  echo '"postgres" ""' >"$bdir/userlist.txt"
  cat >"$bdir/pgbouncer.ini" <<EOF
; pg-test-cluster.sh: PgBouncer in $mode pooling mode in front of the test cluster on port $port.
; PgBouncer's defaults but for what a test setup needs (see the script's header).
[databases]
* = host=127.0.0.1 port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $(bouncer_port "$mode")
unix_socket_dir =
pool_mode = $mode
auth_type = trust
auth_file = $bdir/userlist.txt
max_client_conn = 400
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
EOF
  if [ "$(id -u)" -eq 0 ]; then chown -R "$run_user" "$bdir"; fi
}

# Waits (bounded: 10 s) until the pooler of mode $1 answers a query on the cluster.
wait_for_bouncer() {
  local mode=$1 bport _
  bport=$(bouncer_port "$mode")
  for _ in $(seq 1 100); do
    if PGCONNECT_TIMEOUT=2 "$bin/psql" -X -q -At -h 127.0.0.1 -p "$bport" -U postgres -d postgres \
      -c 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    bouncer_pid "$mode" >/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$(bouncer_dir "$mode")/pgbouncer.log" >&2 2>/dev/null || true
  die "pgbouncer ($mode pooling) does not answer on 127.0.0.1:$bport (is the port taken? set SLUICE_PGBOUNCER_${mode^^}_PORT)"
}

start_bouncer() {
  local mode=$1 bdir
  bdir=$(bouncer_dir "$mode")
  if bouncer_pid "$mode" >/dev/null; then
    say "pgbouncer ($mode pooling) already running on 127.0.0.1:$(bouncer_port "$mode")"
    return 0
  fi
  write_bouncer_config "$mode"
  rm -f "$bdir/pgbouncer.pid"
  say "starting pgbouncer ($mode pooling) on 127.0.0.1:$(bouncer_port "$mode")"
  # PgBouncer refuses to run as root: it runs daemonized as the cluster's owner.
  if ! as_owner "$bouncer_bin" -d -q "$bdir/pgbouncer.ini" >"$bdir/start.log" 2>&1; then
    cat "$bdir/start.log" >&2 || true
    tail -n 20 "$bdir/pgbouncer.log" >&2 2>/dev/null || true
    die "pgbouncer ($mode pooling) did not start (is port $(bouncer_port "$mode") taken? set SLUICE_PGBOUNCER_${mode^^}_PORT)"
  fi
  wait_for_bouncer "$mode"
}

# Succeeds while process $1 runs (a zombie, exited but not yet reaped, does not count).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Stops the PgBouncer of mode $1 at once: SIGTERM is PgBouncer's immediate shutdown, which drops
# its clients and server connections.
stop_bouncer() {
  local mode=$1 pid _
  pid=$(bouncer_pid "$mode") || return 0
  say "stopping pgbouncer ($mode pooling)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    alive "$pid" || break
    sleep 0.05
  done
  if alive "$pid"; then
    say "pgbouncer ($mode pooling) did not stop within 10 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(bouncer_dir "$mode")/pgbouncer.pid"
}

start_bouncers() {
  local mode
  for mode in "${bouncer_modes[@]}"; do start_bouncer "$mode"; done
}

stop_bouncers() {
  local mode
  for mode in "${bouncer_modes[@]}"; do stop_bouncer "$mode"; done
}

bouncers_running() {
  local mode ok=0
  for mode in "${bouncer_modes[@]}"; do
    if ! bouncer_pid "$mode" >/dev/null; then
      say "pgbouncer ($mode pooling) is not running"
      ok=1
    fi
  done
  return $ok
}

print_dsn() {
  echo "SLUICE_TEST_PG_DSN=$dsn"
  [ "$with_bouncers" = 1 ] || return 0
  echo "SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN=$(bouncer_dsn transaction)"
  echo "SLUICE_TEST_PGBOUNCER_SESSION_DSN=$(bouncer_dsn session)"
}

start_server() {
  if running; then
    say "already running in $dir on 127.0.0.1:$port"
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
  local _
  for _ in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      return 0
    fi
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2 || true
  die "the server does not accept connections on 127.0.0.1:$port"
}

start() {
  need_binaries
  [ "$with_bouncers" = 0 ] || need_pgbouncer
  ensure_run_user
  start_server
  [ "$with_bouncers" = 0 ] || start_bouncers
  print_dsn
}

pause() {
  stop_bouncers
  need_binaries
  ensure_run_user
  if running; then
    say "stopping the server in $dir (data kept)"
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
  fi
}

stop() {
  stop_bouncers
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

restart_pgbouncer() {
  local modes=("${bouncer_modes[@]}") mode
  if [ $# -gt 0 ]; then
    bouncer_port "$1" >/dev/null
    modes=("$1")
  fi
  [ "$with_bouncers" = 1 ] || die "restart-pgbouncer with SLUICE_PGBOUNCER=0: there is no pooler"
  need_binaries
  need_pgbouncer
  ensure_run_user
  running || die "the cluster in $dir is not running: start it first"
  for mode in "${modes[@]}"; do
    stop_bouncer "$mode"
    start_bouncer "$mode"
  done
}

restart_server() {
  need_binaries
  ensure_run_user
  running || die "the cluster in $dir is not running: start it first"
  say "stopping the server in $dir (the poolers keep running)"
  as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
  start_server
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  pause) pause ;;
  env) print_dsn ;;
  status)
    if running && { [ "$with_bouncers" = 0 ] || bouncers_running; }; then
      say "running in $dir on 127.0.0.1:$port"
      print_dsn
    else
      running || say "not running ($dir)"
      exit 1
    fi
    ;;
  restart-server) restart_server ;;
  restart-pgbouncer)
    [ $# -le 2 ] || die "usage: $0 restart-pgbouncer [transaction|session]"
    restart_pgbouncer "${@:2}"
    ;;
  *)
    echo "usage: $0 start|stop|pause|env|status|restart-server|restart-pgbouncer [transaction|session]" >&2
    exit 2
    ;;
esac
