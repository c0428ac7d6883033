#!/usr/bin/env bash
# The cost of `sluice lint` on a dev server (issue 13's target: 100 small revisions under 3 s):
#   1. lint of 100 small revisions (make_revisions: a CREATE TABLE and an INSERT each) and of 1,
#      median of RUNS wall times each, interleaved; the cost per revision is their difference / 99
#      (the scratch database's CREATE and DROP DATABASE are the fixed part);
#   2. lint of the 52-revision corpus (tests/testdata/lint/corpus: risky statements, observed);
#   3. the sizes of the binaries given (the parser's archive is in both when built with lint).
# Usage: bench/lint_bench.sh [SLUICE [STATIC_SLUICE]]
#   (defaults: build/cmd/sluice/sluice and build-static/cmd/sluice/sluice, when there; builds nothing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sluice=${1:-$root/build/cmd/sluice/sluice}
static=${2:-$root/build-static/cmd/sluice/sluice}
runs=${RUNS:-5}
psql=${PSQL:-/usr/lib/postgresql/15/bin/psql}
work=$(mktemp -d /tmp/sluice-lint-bench.XXXXXX)
chmod 755 "$work"

export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-lint-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54346}
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
admin=$SLUICE_TEST_PG_DSN

. "$root/bench/bench_lib.sh"

make_revisions "$work/m100" 100
mkdir -p "$work/m1" && cp "$work/m100/r0001.yaml" "$work/m1/"
lint() { "$sluice" lint --migrations "$1" --dev-url "$admin"; }
# The corpus's revisions have findings: exit 8 is its success (anything else stops the bench).
lint_corpus() { lint "$root/tests/testdata/lint/corpus" || [ $? -eq 8 ]; }
# A lint that fails makes the timings worthless.
must lint "$work/m100"

echo "lint bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), RUNS=$runs, PostgreSQL $("$psql" -X -At -d "$admin" -c 'SHOW server_version')"
: >"$work/t100" && : >"$work/t1" && : >"$work/tc"
for _ in $(seq "$runs"); do
  time_ms lint "$work/m100" >>"$work/t100"
  time_ms lint "$work/m1" >>"$work/t1"
  time_ms lint_corpus >>"$work/tc"
done
t100=$(median <"$work/t100") t1=$(median <"$work/t1") tc=$(median <"$work/tc")
per=$(awk "BEGIN {printf \"%.1f\", ($t100 - $t1) / 99}")
verdict=$([ "$t100" -lt 3000 ] && echo "under 3 s" || echo "OVER the 3 s target")
echo "lint, 100 small revisions: ${t100} ms (${verdict}); 1 revision: ${t1} ms; per revision: ${per} ms"
echo "lint, corpus (52 revisions, 15 transactional: false): ${tc} ms"
echo "binary: $(stat -c %s "$sluice") bytes ($sluice)"
if [ -x "$static" ]; then
  strip --strip-all -o "$work/sluice-stripped" "$static"
  echo "static binary: $(stat -c %s "$static") bytes, stripped $(stat -c %s "$work/sluice-stripped") bytes ($static)"
fi
