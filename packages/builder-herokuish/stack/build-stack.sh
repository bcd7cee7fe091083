#!/usr/bin/env bash
# Builds the Berth stack image berth/stack:<suite> from a debootstrap'd Debian rootfs, offline-capable:
#   1. debootstrap a minbase rootfs with what buildpacks expect, once, cached as a tarball under $BERTH_STACK_CACHE
#   2. `docker import` it (PATH and other env set at import) as berth/stack-rootfs:<suite>-<key>, kept for reuse
#   3. `docker build` a thin layer on top: extra CA certificates, the build user, /start and the lifecycle scripts
# Steps 1 and 2 are skipped when their result exists, so a rebuild from the cache takes seconds.
#
# Settings (environment):
#   BERTH_STACK_SUITE      Debian suite (default bookworm)
#   BERTH_STACK_IMAGE      image to build (default berth/stack:<suite>)
#   BERTH_STACK_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   BERTH_STACK_CACHE      where rootfs tarballs are cached (default /var/cache/berth)
#   BERTH_STACK_PACKAGES   extra Debian packages, comma-separated
#   BERTH_STACK_CA_DIR     directory of extra CA certificates (*.crt) to trust (default /usr/local/share/ca-certificates)
#   BERTH_STACK_REBUILD    1 = debootstrap again even when a cached tarball exists
# Used by @berth/builder-herokuish's buildStackImage() and by scripts/setup-host --stack.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${BERTH_STACK_SUITE:-bookworm}
image=${BERTH_STACK_IMAGE:-berth/stack:$suite}
mirror=${BERTH_STACK_MIRROR:-http://deb.debian.org/debian}
cache=${BERTH_STACK_CACHE:-/var/cache/berth}
ca_dir=${BERTH_STACK_CA_DIR-/usr/local/share/ca-certificates}
# What buildpacks expect on a Heroku-like stack; bash, coreutils, findutils, tar, gzip, passwd and util-linux
# (runuser, setpriv) are part of every minbase rootfs already. busybox brings a small httpd for static sites.
packages="ca-certificates,curl,git,adduser,busybox,procps,xz-utils,bzip2,unzip,file,netbase"
[ -n "${BERTH_STACK_PACKAGES:-}" ] && packages="$packages,$BERTH_STACK_PACKAGES"
say() { printf -- '-----> %s\n' "$*"; }
detail() { printf -- '       %s\n' "$*"; }

case "$suite" in *[!a-z0-9-]*|'') echo "build-stack: invalid suite '$suite'" >&2; exit 2 ;; esac
case "$packages" in *[!a-z0-9.+,-]*) echo "build-stack: invalid package list '$packages'" >&2; exit 2 ;; esac

key=$(printf '%s\n%s\n%s\n' "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)
tarball="$cache/stack-rootfs-$suite-$key.tar"
base="berth/stack-rootfs:$suite-$key"

# One build at a time per cache (parallel test runs on a fresh machine would otherwise debootstrap twice).
mkdir -p "$cache"
exec 9>"$cache/build-stack.lock"
flock 9

if [ "${BERTH_STACK_REBUILD:-0}" = 1 ]; then rm -f "$tarball"; docker image rm "$base" >/dev/null 2>&1 || true; fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "build-stack: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "build-stack: debootstrap needs root" >&2; exit 1; }
    say "Debootstrapping a $suite rootfs from $mirror (once; cached in $tarball)"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs" "$tarball.partial"' EXIT
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || {
      tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
    rm -f "$rootfs.log"
    # Package lists and downloaded .debs are of no use in an image; the apt cache is refilled by apt-get update.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  say "Importing $tarball as $base"
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c "ENV STACK=berth-$suite" \
    -c 'ENV DEBIAN_FRONTEND=noninteractive' \
    -c 'CMD ["/bin/bash"]' \
    "$tarball" "$base" >/dev/null
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/ca-certificates"
if [ -n "$ca_dir" ] && [ -d "$ca_dir" ]; then
  find "$ca_dir" -maxdepth 2 -type f -name '*.crt' -exec cp {} "$context/ca-certificates/" \;
fi
cp -a "$here/rootfs" "$context/rootfs"
cat > "$context/Dockerfile" <<DOCKERFILE
FROM $base
COPY ca-certificates/ /usr/local/share/ca-certificates/berth/
COPY rootfs/ /
RUN update-ca-certificates >/dev/null 2>&1 \\
 && chmod 1777 /tmp \\
 && /usr/local/lib/berth/lifecycle ensure-user \\
 && ln -sf /bin/busybox /usr/local/bin/httpd
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL berth.stack=$suite berth.stack.rootfs=$key
DOCKERFILE
say "Building $image"
build_log="$context.log"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$context" >"$build_log" 2>&1 || { cat "$build_log" >&2; rm -f "$build_log"; exit 1; }
rm -f "$build_log"
detail "$image is ready ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1000000}'))"
