#!/usr/bin/env bash
# Builds a fully static `sluice` (libpq, OpenSSL, cpprestsdk, prometheus-cpp, yaml-cpp, abseil,
# libpg_query, libstdc++, libgcc and glibc all linked in) into BUILD_DIR. libpg_query (PostgreSQL's
# parser, for `sluice lint`) is Debian's own static archive, libpg-query-dev's libpg_query.a, as in
# every build (cmake/SluiceDeps.cmake); --gc-sections keeps only what lint's parse reaches.
# Usage: scripts/build-static.sh BUILD_DIR [extra cmake -D options...]
#
# Debian 12 ships no static cpprestsdk or prometheus-cpp, and its libpq.a needs Kerberos and LDAP
# archives it does not ship. All three are built here from Debian's own source packages, pinned
# (cpprest 2.10.18-1; prometheus-cpp 1.0.1-1; postgresql-15 at the installed libpq-dev's version, so
# the headers we compile against match the library we link), configured for what sluice needs, and
# kept in a cache folder that later builds reuse:
#   SLUICE_STATIC_CACHE (default ~/.cache/sluice-static)/deps-<recipe hash>/{include,lib}
# A cold cache adds a few minutes on two cores (8 when another build shares them); a warm one adds
# nothing. Fetching the sources adds a deb-src entry for the archive apt already uses, which needs
# root (CI and the image's build stage are root); a warm cache needs neither root nor the network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:?usage: scripts/build-static.sh BUILD_DIR [cmake options...]}
shift
jobs=$(nproc)

cpprest_version=2.10.18-1
prometheus_version=1.0.1-1
pq_version=$(dpkg-query -W -f='${Version}' libpq-dev)
# Compile flags of the cached libraries: part of the cache key, so changing them rebuilds.
deps_cflags="-Os -ffunction-sections -fdata-sections"
# Bump when a recipe below changes (2: cpprest's listener, prometheus-cpp).
recipe_revision=2
key=$(printf '%s\n' "$cpprest_version" "$prometheus_version" "$pq_version" "$deps_cflags" \
  "$recipe_revision" \
  "$(gcc -dumpfullversion)" | sha256sum | cut -c1-12)
cache_root=${SLUICE_STATIC_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/sluice-static}
prefix=$cache_root/deps-$key

log() { echo "build-static: $*" >&2; }

# Adds deb-src lines for the same archives as apt's binary sources, once.
ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "no deb-src entry in apt's sources and not root: run once as root, or fill $prefix"
    exit 1
  fi
  local out=/etc/apt/sources.list.d/sluice-deb-src
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$out.sources"
  else
    grep -hE '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$out.list"
  fi
  log "added deb-src entries ($out.*)"
  apt-get update -qq
}

fetch_source() { # package version dest_dir
  local package=$1 version=$2 dest=$3
  ensure_deb_src
  local work
  work=$(mktemp -d)
  # Pinned with =version: the security archive may carry a newer one than the installed libpq-dev.
  # The download is unsandboxed so that it works from any folder as root.
  (cd "$work" && apt-get source -qq --download-only -o APT::Sandbox::User=root \
    "$package=$version" >/dev/null)
  # dpkg-source applies Debian's patches (for libpq: the socket directory /var/run/postgresql).
  # apt already checked the archive's signatures.
  (cd "$work" && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  rm -rf "$dest"
  mv "$work/src" "$dest"
  rm -rf "$work"
}

build_cpprest() { # staging_dir
  local stage=$1 src=$1/src-cpprest
  log "building cpprestsdk $cpprest_version (HTTP client and listener)"
  fetch_source cpprest "$cpprest_version" "$src"
  # The client (HTTPS to the API server) and the asio listener (the operator's /metrics and probes;
  # Boost 1.74's asio is header-only); no websockets or compression.
  cmake -S "$src" -B "$stage/build-cpprest" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=$deps_cflags -DNDEBUG" -DCMAKE_INSTALL_PREFIX="$stage/out" \
    -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DCPPREST_EXCLUDE_WEBSOCKETS=ON \
    -DCPPREST_EXCLUDE_COMPRESSION=ON -DCPPREST_EXCLUDE_BROTLI=ON -DCPPREST_HTTP_LISTENER_IMPL=asio \
    -DBUILD_TESTS=OFF -DBUILD_SAMPLES=OFF -DWERROR=OFF >/dev/null
  cmake --build "$stage/build-cpprest" -j"$jobs" >/dev/null
  cmake --install "$stage/build-cpprest" >/dev/null
}

build_prometheus() { # staging_dir
  local stage=$1 src=$1/src-prometheus
  log "building prometheus-cpp $prometheus_version (core only)"
  fetch_source prometheus-cpp "$prometheus_version" "$src"
  # The core (registry and text format) only: sluice serves /metrics with cpprest's listener, so
  # neither the civetweb pull server nor the curl push client.
  cmake -S "$src" -B "$stage/build-prometheus" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=$deps_cflags -DNDEBUG" -DCMAKE_INSTALL_PREFIX="$stage/out" \
    -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DENABLE_PULL=OFF -DENABLE_PUSH=OFF \
    -DENABLE_COMPRESSION=OFF -DENABLE_TESTING=OFF -DUSE_THIRDPARTY_LIBRARIES=OFF \
    -DGENERATE_PKGCONFIG=OFF >/dev/null
  cmake --build "$stage/build-prometheus" -j"$jobs" >/dev/null
  cmake --install "$stage/build-prometheus" >/dev/null
}

build_libpq() { # staging_dir
  local stage=$1 src=$1/src-pq
  log "building libpq $pq_version (OpenSSL; no GSSAPI, LDAP, zlib)"
  fetch_source postgresql-15 "$pq_version" "$src"
  # Debian's configuration where it matters at run time (sysconfdir for pg_service.conf), and without
  # what has no static archive in Debian (Kerberos, LDAP).
  (cd "$src" && CFLAGS="$deps_cflags" ./configure --prefix=/usr \
    --sysconfdir=/etc/postgresql-common --with-openssl --without-readline --without-zlib \
    --without-gssapi --without-ldap --without-icu --disable-nls >/dev/null)
  make -C "$src/src/interfaces/libpq" -j"$jobs" >/dev/null
  mkdir -p "$stage/out/lib" "$stage/out/include"
  cp "$src/src/interfaces/libpq/libpq.a" "$src/src/common/libpgcommon_shlib.a" \
    "$src/src/port/libpgport_shlib.a" "$stage/out/lib/"
  cp "$src/src/interfaces/libpq/libpq-fe.h" "$src/src/interfaces/libpq/libpq-events.h" \
    "$src/src/include/postgres_ext.h" "$src/src/include/pg_config_ext.h" "$stage/out/include/"
}

if [ ! -f "$prefix/.complete" ]; then
  start=$(date +%s)
  mkdir -p "$cache_root"
  stage=$(mktemp -d "$cache_root/.stage-XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  build_libpq "$stage"
  build_cpprest "$stage"
  build_prometheus "$stage"
  touch "$stage/out/.complete"
  # Renamed into place only when whole, so an interrupted build never leaves a cache that looks warm.
  rm -rf "$prefix"
  mv "$stage/out" "$prefix"
  log "dependencies built in $(($(date +%s) - start)) s into $prefix"
else
  log "dependencies from the cache: $prefix"
fi

cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=MinSizeRel -DSLUICE_STATIC=ON \
  -DSLUICE_STATIC_PREFIX="$prefix" "$@" >/dev/null
cmake --build "$build_dir" -j"$jobs" --target sluice
