#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds sluice twice (release, and ASan + UBSan),
# starts a throwaway PostgreSQL on 127.0.0.1 with two PgBouncers in front of it (transaction and
# session pooling, on SLUICE_PG_PORT+1 and +2), and runs every test in both builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh

export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-test-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54329}
trap 'scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(scripts/pg-test-cluster.sh start)"
export SLUICE_TEST_PG_DSN SLUICE_TEST_PGBOUNCER_TRANSACTION_DSN SLUICE_TEST_PGBOUNCER_SESSION_DSN
# Only the sanitizer build reads it: a leak inside cpprestsdk's thread pool at exit (tests/lsan.supp).
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0

status=0
for variant in release asan; do
  build_dir=$root/build-test-$variant
  # Release for speed; the sanitizer build at -O1 with line tables, which is enough for readable
  # reports and keeps CI's two builds within its time.
  options=(-DCMAKE_BUILD_TYPE=Release)
  [ "$variant" = asan ] && options=(-DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1")
  echo "=== build ($variant)"
  scripts/build.sh "$build_dir" "${options[@]}"
  echo "=== test ($variant)"
  if ! ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600; then
    status=1
  fi
done
exit $status
