#!/usr/bin/env bash
# sluice's main job, end to end: installs what is missing, builds sluice, and applies migrations/ to
# the database in DATABASE_URL, or, when none is given, to an embedded throwaway PostgreSQL on
# 127.0.0.1 (stopped again at the end). Then prints `sluice current` and `sluice history`.
# Usage: scripts/run.sh [extra flags for `sluice upgrade`]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
SLUICE_BUILD_TARGET=sluice scripts/build.sh "$root/build"
sluice=$root/build/cmd/sluice/sluice

if [ -z "${DATABASE_URL:-}" ]; then
  export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-run-pg}
  export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54330}
  export SLUICE_PGBOUNCER=${SLUICE_PGBOUNCER:-0} # PostgreSQL alone: no pooler in front of it
  trap 'scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
  eval "$(scripts/pg-test-cluster.sh start)"
  export DATABASE_URL=$SLUICE_TEST_PG_DSN
  echo "== no DATABASE_URL given: using an embedded throwaway PostgreSQL at $DATABASE_URL"
fi

echo "== sluice upgrade head"
"$sluice" upgrade head --migrations "$root/migrations" "$@"
echo "== sluice current"
"$sluice" current --migrations "$root/migrations"
echo "== sluice history"
"$sluice" history --migrations "$root/migrations"
