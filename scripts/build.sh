#!/usr/bin/env bash
# Configures and builds sluice into a build directory.
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
# SLUICE_BUILD_TARGET names one target to build (default: everything, tests included).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
target=()
[ -n "${SLUICE_BUILD_TARGET:-}" ] && target=(--target "$SLUICE_BUILD_TARGET")
cmake --build "$build_dir" -j"$(nproc)" "${target[@]}"
