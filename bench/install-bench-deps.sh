#!/usr/bin/env bash
# Installs what bench/compare_bench.sh needs beyond scripts/install-deps.sh, when missing; bench
# only (CI and the tests need none of it):
#   - Debian 12's Alembic with its PostgreSQL driver (python3-alembic 1.8.1, python3-psycopg2), for
#     /usr/bin/python3 (a python3 earlier on the PATH, e.g. pyenv's, does not see Debian's packages);
#     `time` (GNU time, for peak RSS) and `strace` (what each tool reads from disk);
#   - dbmate, pinned, from its npm package (the package's binary for this platform), into the
#     git-ignored folder bench/tools/dbmate-VERSION.
# Prints the dbmate binary's path on stdout. Run as root for the apt part (a fresh machine);
# as another user it only reports what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dbmate_version=${DBMATE_VERSION:-2.36.0}
tools=$root/bench/tools

packages=(python3-alembic python3-psycopg2 time strace)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "install-bench-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=$tools/dbmate-$dbmate_version
binary=$dir/node_modules/@dbmate/linux-x64/bin/dbmate
if [ ! -x "$binary" ]; then
  command -v npm >/dev/null || { echo "install-bench-deps: npm is missing (apt-get install npm)" >&2; exit 1; }
  [ "$(uname -m)" = x86_64 ] || { echo "install-bench-deps: only x86_64 is set up (the @dbmate/linux-x64 binary)" >&2; exit 1; }
  echo "install-bench-deps: installing dbmate $dbmate_version from npm into $dir" >&2
  mkdir -p "$dir"
  # The dbmate package's only content is a launcher in JavaScript; the binary comes in the optional
  # dependency for this platform. The bench runs that binary directly, not through node.
  npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "dbmate@$dbmate_version" >&2
fi
got=$("$binary" --version)
[ "$got" = "dbmate version $dbmate_version" ] || { echo "install-bench-deps: $binary says '$got', expected $dbmate_version" >&2; exit 1; }
echo "$binary"
