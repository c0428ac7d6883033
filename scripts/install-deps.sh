#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages sluice needs to build and test, when any is missing.
# Run as root (a fresh machine or CI); as another user it only reports what is missing.
set -euo pipefail

packages=(
  g++ cmake make pkg-config git ca-certificates
  libabsl-dev libyaml-cpp-dev libpq-dev libcpprest-dev libssl-dev
  # The operator's metrics registry and text format (pkg/metrics).
  prometheus-cpp-dev
  libgtest-dev libgmock-dev
  # `sluice lint`: PostgreSQL's parser as a static archive, and the protobuf-c header its parse
  # tree needs.
  libpg-query-dev libprotobuf-c-dev
  postgresql postgresql-client
  pgbouncer
  # sluice import alembic's tests: Alembic in /usr/bin/python3 (the import renders with it) and
  # psycopg2 for the online `alembic upgrade` the imported manifests are compared with.
  python3-alembic python3-psycopg2
  # The static build (scripts/build-static.sh: dpkg-source unpacks Debian's source packages) and
  # the image's root-filesystem tests (file, a DNS server on loopback).
  dpkg-dev file dnsmasq-base
  # The Argo CD health check's test (manifests/argocd-health.yaml): Lua 5.1, Argo CD's dialect.
  lua5.1
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The postgresql and pgbouncer packages would start a system cluster and a system pooler; sluice's
# tests run their own throwaway ones (scripts/pg-test-cluster.sh).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Should a system PgBouncer have started anyway (a policy-rc.d that allowed it), stop it: the tests
# start their own, and a system one would hold port 6432 for nothing.
pidfile=/run/postgresql/pgbouncer.pid
if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pgbouncer ]; then
  echo "install-deps: stopping the system pgbouncer service (pid $pid)" >&2
  kill -TERM "$pid" || true
fi
