#!/usr/bin/env bash
# Start-up of the dynamic and the static sluice against the real psql, side by side in one run:
#   1. `sluice version` vs `psql --version` (wall time, median of RUNS, the three interleaved);
#   2. a no-op `sluice upgrade head` on an up-to-date database of 100 revisions vs
#      `psql -c 'SELECT 1'` (median of RUNS, interleaved);
#   3. peak resident memory (/usr/bin/time) of each;
#   4. a profile in counts that the machine's load does not change (below).
# Usage: bench/startup_bench.sh [DYNAMIC_SLUICE [STATIC_SLUICE]]
#   (defaults: build/cmd/sluice/sluice and build-static/cmd/sluice/sluice; builds nothing)
# psql is the real client binary, never Debian's Perl wrapper on the PATH (see db_bench.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dynamic=${1:-$root/build/cmd/sluice/sluice}
static=${2:-$root/build-static/cmd/sluice/sluice}
runs=${RUNS:-30}
psql=${PSQL:-/usr/lib/postgresql/15/bin/psql}
work=$(mktemp -d /tmp/sluice-startup-bench.XXXXXX)
chmod 755 "$work"
# A copy made with cp: a binary just written by strip -o or the linker measured a higher peak RSS
# until copied (style.md); what the image holds is such a copy.
cp "$dynamic" "$work/sluice-dynamic"
cp "$static" "$work/sluice-static"

export SLUICE_PG_DIR=${SLUICE_PG_DIR:-/tmp/sluice-startup-bench-pg}
export SLUICE_PG_PORT=${SLUICE_PG_PORT:-54332}
trap '"$root/scripts/pg-test-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/pg-test-cluster.sh" start)"
admin=$SLUICE_TEST_PG_DSN
url=${admin%/*}/bench_startup

. "$root/bench/bench_lib.sh"

fresh_db bench_startup
make_revisions "$work/m100" 100
"$work/sluice-static" upgrade head --migrations "$work/m100" --database-url "$url" >/dev/null 2>&1

echo "startup bench: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), RUNS=$runs, PostgreSQL $("$psql" -X -At -d "$admin" -c 'SHOW server_version')"
echo "binaries: dynamic $(stat -c %s "$dynamic") bytes, static $(stat -c %s "$static") bytes"

# 1. version: the three interleaved, so that a busy moment of the machine hits them alike.
: >"$work/v.d" && : >"$work/v.s" && : >"$work/v.p"
for _ in $(seq "$runs"); do
  time_us "$work/sluice-dynamic" version >>"$work/v.d"
  time_us "$work/sluice-static" version >>"$work/v.s"
  time_us "$psql" --version >>"$work/v.p"
done
vd=$(median <"$work/v.d") vs=$(median <"$work/v.s") vp=$(median <"$work/v.p")
echo "version:  dynamic ${vd} us ($(ratio_of "$vd" "$vp")x), static ${vs} us ($(ratio_of "$vs" "$vp")x), psql --version ${vp} us"

# 2. no-op upgrade on 100 revisions vs SELECT 1.
noop=(upgrade head --migrations "$work/m100" --database-url "$url")
: >"$work/n.d" && : >"$work/n.s" && : >"$work/n.p"
for _ in $(seq "$runs"); do
  time_us "$work/sluice-dynamic" "${noop[@]}" >>"$work/n.d"
  time_us "$work/sluice-static" "${noop[@]}" >>"$work/n.s"
  time_us "$psql" -X -q -d "$url" -c 'SELECT 1' >>"$work/n.p"
done
nd=$(median <"$work/n.d") ns=$(median <"$work/n.s") np=$(median <"$work/n.p")
echo "no-op, 100 revisions: dynamic ${nd} us ($(ratio_of "$nd" "$np")x), static ${ns} us ($(ratio_of "$ns" "$np")x), psql SELECT 1 ${np} us"

# 3. peak RSS.
echo "peak RSS (KiB): version dynamic $(peak_kib "$work/sluice-dynamic" version), static $(peak_kib "$work/sluice-static" version), psql --version $(peak_kib "$psql" --version);" \
  "no-op dynamic $(peak_kib "$work/sluice-dynamic" "${noop[@]}"), static $(peak_kib "$work/sluice-static" "${noop[@]}"), psql SELECT 1 $(peak_kib "$psql" -X -q -d "$url" -c 'SELECT 1')"

# 4. Where start-up goes, in counts that do not depend on the machine's load (PROFILE=0 skips it;
#    needs valgrind and strace): instructions executed (callgrind), of them those in the dynamic
#    loader, the dynamic loader's relocations (LD_DEBUG=statistics), system calls and messages
#    sent to the server (strace).
if [ "${PROFILE:-1}" = 1 ] && command -v valgrind >/dev/null && command -v strace >/dev/null; then
  # Prints "instructions=N in_ld.so=M" for one command.
  instructions() {
    local out=$work/callgrind.out
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk '
      /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
      /rtld.c:_dl_start / { gsub(",", "", $1); loader = $1 }
      END { printf "instructions=%d in_ld.so=%d", total, loader }'
  }
  # Prints "syscalls=N sent=M" for one command.
  syscalls() {
    strace -f -c -o "$work/strace.out" "$@" >/dev/null 2>&1
    local total sent
    total=$(awk '$NF == "total" { print $4 }' "$work/strace.out")
    sent=$(awk '$NF == "sendto" { print $4 }' "$work/strace.out")
    printf 'syscalls=%s sent_to_server=%s' "$total" "${sent:-0}"
  }
  relocations() {
    LD_DEBUG=statistics "$@" 2>&1 >/dev/null | awk '/final number of relocations:/ { n = $NF } END { printf "relocations=%s", n == "" ? "none (static)" : n }'
  }
  for contender in "sluice-dynamic:$work/sluice-dynamic" "sluice-static:$work/sluice-static" "psql:$psql"; do
    name=${contender%%:*} binary=${contender#*:}
    if [ "$name" = psql ]; then
      version=(--version) query=(-X -q -d "$url" -c 'SELECT 1')
    else
      version=(version) query=("${noop[@]}")
    fi
    echo "profile $name: version $(instructions "$binary" "${version[@]}"); no-op $(instructions "$binary" "${query[@]}") $(syscalls "$binary" "${query[@]}") $(relocations "$binary" "${query[@]}")"
  done
fi
