#!/usr/bin/env bash
# Assembles the image's root filesystem (the Dockerfile's final stage copies it FROM scratch):
#   /sluice                              the static binary, stripped
#   /etc/ssl/certs/ca-certificates.crt   Debian's CA bundle (for servers with public certificates)
#   /etc/passwd, /etc/group              root and the user the image runs as, nonroot (65532)
# and nothing else.
# Usage: scripts/image-rootfs.sh OUT_DIR [STATIC_SLUICE]   (default: build-static/cmd/sluice/sluice)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/image-rootfs.sh OUT_DIR [STATIC_SLUICE]}
binary=${2:-$root/build-static/cmd/sluice/sluice}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

die() {
  echo "image-rootfs: $*" >&2
  exit 1
}
[ -x "$binary" ] || die "no binary at $binary (build it with scripts/build-static.sh)"
# The image has no dynamic loader and no libraries: refuse anything that needs them.
file -L "$binary" | grep -q 'statically linked' || die "$binary is not statically linked"
[ -f "$ca_bundle" ] || die "no CA bundle at $ca_bundle (install Debian's ca-certificates)"
# Replaces only an earlier root filesystem (or an empty folder), never some other folder.
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/sluice" ]; then
  die "$out is neither empty nor an earlier root filesystem"
fi
rm -rf "$out"
mkdir -p "$out/etc/ssl/certs"

cp "$binary" "$out/sluice"
strip --strip-all "$out/sluice"
chmod 0755 "$out/sluice"
install -m 0644 "$ca_bundle" "$out/etc/ssl/certs/ca-certificates.crt"

# libpq looks the user up when a URL names none ("could not look up local user ID"), so every uid
# the image may run as needs an entry: 65532 (USER in the Dockerfile) and root (runAsUser: 0).
# The home folder does not exist: libpq then finds no ~/.pgpass, as wanted.
cat >"$out/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
cat >"$out/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
# No /etc/nsswitch.conf: without one, the static glibc (2.36) reads users from /etc/passwd and
# host names from /etc/hosts before DNS, as wanted (tests/rootfs checks both, hostAliases against
# a DNS server that denies the name).
chmod 0644 "$out/etc/passwd" "$out/etc/group"
# Directories readable by all; the image's files belong to root, so the user cannot change them.
find "$out" -type d -exec chmod 0755 {} +

echo "image-rootfs: $out: $(du -sb "$out" | cut -f1) bytes ($(du -sb "$out/sluice" | cut -f1) of them /sluice)" >&2
