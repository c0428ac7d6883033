#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds sluice twice (fully static for the image,
# and the tests with ASan + UBSan), starts a throwaway PostgreSQL on 127.0.0.1 with two PgBouncers
# in front of it (transaction and session pooling, on SLUICE_PG_PORT+1 and +2), runs every test
# (the image's root-filesystem tests among them) in the sanitizer build, and the tests that run
# the binary once more against the static one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
scripts/install-tools.sh # helm and kubectl for the chart tests, into tools/bin

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

# One test build, with AddressSanitizer and UndefinedBehaviorSanitizer at -O1 with line tables
# (enough for readable reports): every test runs once under the sanitizers, and the suites that run
# the binary run again below against the optimised static binary the image ships. A release build
# of the tests as well cost CI a third full build and run, which its 20 minutes no longer hold.
status=0
build_dir=$root/build-test-asan
echo "=== build (asan)"
scripts/build.sh "$build_dir" -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1" \
  "-DSLUICE_TEST_ROOTFS=$root/build-rootfs"
echo "=== test (asan)"
if ! ctest --test-dir "$build_dir" --output-on-failure -j2 --timeout 600; then
  status=1
fi

# The binary the image ships, under the tests that run sluice as a child process (the build's own
# binary in the runs above): the suites built on tests/integration's MigrateTest, the README's
# walk-through, and the lint corpus (libpg_query linked statically).
static_tests='^(MigrateTest|ReportE2eTest|ServerRestartTest|PoolerTest|WaitTest|ReadmeTest)\.|^LintTest\.Corpus'
echo "=== test (static binary)"
if ! SLUICE_TEST_BINARY=$root/build-static/cmd/sluice/sluice ctest --test-dir "$build_dir" \
  --output-on-failure -j2 --timeout 600 -R "$static_tests"; then
  status=1
fi
exit $status
