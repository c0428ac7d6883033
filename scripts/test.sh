#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds sluice three times (fully static for the
# image, release, and ASan + UBSan), starts a throwaway PostgreSQL on 127.0.0.1 with two PgBouncers
# in front of it (transaction and session pooling, on SLUICE_PG_PORT+1 and +2), and runs every
# test in the release and sanitizer builds, the image's root-filesystem tests in the release one,
# and the tests that run the binary once more against the static one.
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

echo "=== build (static) and the image's root filesystem"
scripts/build-static.sh "$root/build-static"
scripts/image-rootfs.sh "$root/build-rootfs"

status=0
for variant in release asan; do
  build_dir=$root/build-test-$variant
  # Release for speed; the sanitizer build at -O1 with line tables, which is enough for readable
  # reports and keeps CI's two builds within its time.
  options=(-DCMAKE_BUILD_TYPE=Release)
  [ "$variant" = release ] && options+=("-DSLUICE_TEST_ROOTFS=$root/build-rootfs")
  [ "$variant" = asan ] && options=(-DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1")
  echo "=== build ($variant)"
  scripts/build.sh "$build_dir" "${options[@]}"
  echo "=== test ($variant)"
  if ! ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600; then
    status=1
  fi
done

# The binary the image ships, under the tests that run sluice as a child process (the build's own
# binary in the runs above): the suites built on tests/integration's MigrateTest, and the lint
# corpus (libpg_query linked statically).
static_tests='^(MigrateTest|ReportE2eTest|ServerRestartTest|PoolerTest)\.|^LintTest\.Corpus'
echo "=== test (static binary)"
if ! SLUICE_TEST_BINARY=$root/build-static/cmd/sluice/sluice ctest --test-dir "$root/build-test-release" \
  --output-on-failure -j2 --timeout 600 -R "$static_tests"; then
  status=1
fi
exit $status
