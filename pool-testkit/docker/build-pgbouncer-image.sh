#!/usr/bin/env bash
# Builds pool-testkit's PgBouncer image without pulling anything: the host's
# /usr/sbin/pgbouncer (Debian's package, 1.18 on bookworm), the libraries
# `ldd` lists and a `postgres` user, added to an empty image. Same host-copy
# method as build-image.sh; tied to the host's glibc.
#
#   pool-testkit/docker/build-pgbouncer-image.sh [--force]
#
# Idempotent: does nothing when the image exists, unless --force.
# Env: POOL_TESTKIT_PGBOUNCER_IMAGE (default pool-testkit/pgbouncer:1.18).
set -euo pipefail

image="${POOL_TESTKIT_PGBOUNCER_IMAGE:-pool-testkit/pgbouncer:1.18}"
force=0
[ "${1:-}" = --force ] && force=1

command -v docker >/dev/null || { echo "build-pgbouncer-image.sh: the docker CLI is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-pgbouncer-image.sh: no Docker daemon answers" >&2; exit 1; }
[ -x /usr/sbin/pgbouncer ] || { echo "build-pgbouncer-image.sh: /usr/sbin/pgbouncer not found: apt-get install pgbouncer (scripts/setup.sh does)" >&2; exit 1; }
if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-pgbouncer-image.sh: $image already exists (use --force to rebuild)"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/pool-testkit-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64" "$rootfs/etc/pgbouncer" "$rootfs/tmp"
ln -s usr/bin "$rootfs/bin"
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"
ln -s bin "$rootfs/usr/sbin"
chmod 1777 "$rootfs/tmp"

put() {
    mkdir -p "$(dirname "$rootfs$1")"
    cp -L "$1" "$rootfs$1"
}
put_with_libs() {
    local lib
    put "$1"
    for lib in $(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$rootfs$lib" ] || put "$lib"
    done
}
put_with_libs /usr/sbin/pgbouncer
cp -L "$(readlink -f /bin/sh)" "$rootfs/usr/bin/sh"
put_with_libs "$(readlink -f /bin/sh)"
for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /usr/lib/x86_64-linux-gnu/libnss_files.so.2; do
    [ -e "$lib" ] && put "$lib" && break
done
cat > "$rootfs/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL administrator:/tmp:/bin/sh
PW
printf 'root:x:0:\npostgres:x:999:\n' > "$rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"

tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
cat > "$work/Dockerfile" <<'DF'
FROM scratch
ADD rootfs.tar /
LABEL org.opencontainers.image.description="PgBouncer for pool-testkit (built locally from the host's package, no pull)"
USER postgres
ENTRYPOINT ["/usr/sbin/pgbouncer"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
DF
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$work" >/dev/null
echo "build-pgbouncer-image.sh: built $image"
