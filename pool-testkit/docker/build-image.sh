#!/usr/bin/env bash
# Builds a PostgreSQL image for pool-testkit's Docker backend without pulling
# anything from a registry (none is reachable on the build machines).
#
#   pool-testkit/docker/build-image.sh [--force] [--method host|debootstrap] [--image NAME:TAG]
#
# Methods:
#   host         (default, ~2 s) copy the host's installed PostgreSQL binaries,
#                the libraries `ldd` lists, a POSIX shell and a few coreutils
#                into a rootfs. Tied to the host's glibc; Debian/Ubuntu layout.
#   debootstrap  (~1 min) a minimal Debian rootfs with postgresql-$PG_MAJOR
#                installed by apt. The mirror is read from this machine's apt
#                sources at run time.
# Either rootfs is added to a `FROM scratch` image (Dockerfile beside this
# script) whose entry point follows the official image's contract.
#
# Idempotent: does nothing when the image exists, unless --force.
# Env: POOL_TESTKIT_IMAGE (default pool-testkit/postgres:15), PG_MAJOR (15).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
image="${POOL_TESTKIT_IMAGE:-pool-testkit/postgres:$PG_MAJOR}"
method=host
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --method) method="$2"; shift ;;
        --method=*) method="${1#*=}" ;;
        --image) image="$2"; shift ;;
        --image=*) image="${1#*=}" ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

command -v docker >/dev/null || { echo "build-image.sh: the docker CLI is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-image.sh: no Docker daemon answers (docker info failed)" >&2; exit 1; }
if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build-image.sh: $image already exists (use --force to rebuild)"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/pool-testkit-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"

# Copies a file to the same path inside the rootfs, following symlinks.
put() {
    local src="$1" dest="$rootfs$1"
    mkdir -p "$(dirname "$dest")"
    cp -L "$src" "$dest"
}

# Copies a binary and every library it needs (plus the dynamic loader).
put_with_libs() {
    local f lib
    for f in "$@"; do
        put "$f"
        for lib in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
            [ -e "$rootfs$lib" ] || put "$lib"
        done
    done
}

build_host_rootfs() {
    local pgbin="/usr/lib/postgresql/$PG_MAJOR/bin"
    local pglib="/usr/lib/postgresql/$PG_MAJOR/lib"
    local pgshare="/usr/share/postgresql/$PG_MAJOR"
    for d in "$pgbin" "$pglib" "$pgshare"; do
        [ -d "$d" ] || { echo "build-image.sh: $d not found: install postgresql-$PG_MAJOR (apt-get install postgresql-$PG_MAJOR) or use --method debootstrap" >&2; exit 1; }
    done
    # Merged-/usr layout like Debian: /bin, /lib, /lib64 point into /usr.
    mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64"
    ln -s usr/bin "$rootfs/bin"
    ln -s usr/lib "$rootfs/lib"
    ln -s usr/lib64 "$rootfs/lib64"
    ln -s bin "$rootfs/usr/sbin"
    ln -s usr/sbin "$rootfs/sbin"

    # PostgreSQL: all binaries, server modules (minus the LLVM JIT, which only
    # loads on demand and is large), share files.
    mkdir -p "$rootfs$pgbin" "$rootfs$pglib"
    cp -a "$pgbin/." "$rootfs$pgbin/"
    tar -C "$pglib" --exclude=./bitcode --exclude='./llvmjit*' -cf - . | tar -C "$rootfs$pglib" -xf -
    mkdir -p "$rootfs/usr/share/postgresql"
    cp -a "$pgshare" "$rootfs/usr/share/postgresql/"
    local f
    for f in "$pgbin"/* "$pglib"/*.so; do
        case "$f" in *llvmjit*) continue ;; esac
        [ -f "$f" ] && put_with_libs "$f"
    done
    # psql and friends are symlinks to pg_wrapper on Debian; copy the real files.
    [ -e /usr/lib/x86_64-linux-gnu/libpq.so.5 ] && put_with_libs /usr/lib/x86_64-linux-gnu/libpq.so.5

    # A shell and the few tools the entry point uses.
    put_with_libs "$(readlink -f /bin/sh)"
    cp -L "$(readlink -f /bin/sh)" "$rootfs/usr/bin/sh"
    for tool in id mkdir chown chmod rm cat ls sleep env setpriv gzip; do
        put_with_libs "$(command -v "$tool")"
    done
    # Name service (getpwuid needs it), timezones, the C.UTF-8 locale.
    for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /usr/lib/x86_64-linux-gnu/libnss_files.so.2; do
        [ -e "$lib" ] && put "$lib" && break
    done
    mkdir -p "$rootfs/usr/share"
    cp -a /usr/share/zoneinfo "$rootfs/usr/share/"
    if [ -d /usr/lib/locale/C.utf8 ]; then
        mkdir -p "$rootfs/usr/lib/locale" && cp -a /usr/lib/locale/C.utf8 "$rootfs/usr/lib/locale/"
    fi

    mkdir -p "$rootfs/etc"
    cat > "$rootfs/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
postgres:x:999:999:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
PW
    cat > "$rootfs/etc/group" <<'GR'
root:x:0:
postgres:x:999:
GR
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"
}

build_debootstrap_rootfs() {
    command -v debootstrap >/dev/null || { echo "build-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    # The mirror comes from this machine's own apt configuration.
    local mirror suite
    mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    [ -n "$mirror" ] || { echo "build-image.sh: no Debian mirror found in the apt sources" >&2; exit 1; }
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror"
    mount_chroot() { mount -t proc proc "$rootfs/proc"; }
    mount_chroot
    trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
    chroot "$rootfs" /bin/sh -c "
        set -e
        groupadd -r -g 999 postgres && useradd -r -g postgres -u 999 -d /var/lib/postgresql -s /bin/sh postgres
        mkdir -p /etc/postgresql-common/createcluster.d
        echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-$PG_MAJOR
        apt-get clean
        # The LLVM JIT (and LLVM itself, which only it uses) loads on demand
        # and is most of the size.
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/lib/postgresql/$PG_MAJOR/lib/bitcode \
            /usr/lib/postgresql/$PG_MAJOR/lib/llvmjit* /usr/lib/x86_64-linux-gnu/libLLVM* \
            /usr/share/doc /usr/share/man /usr/share/locale
    "
    umount "$rootfs/proc"
}

case "$method" in
    host) build_host_rootfs ;;
    debootstrap) build_debootstrap_rootfs ;;
    *) echo "build-image.sh: unknown method $method (host|debootstrap)" >&2; exit 2 ;;
esac

mkdir -p "$rootfs/usr/local/bin" "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/run/postgresql" \
    "$rootfs/var/lib/postgresql" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
chown 999:999 "$rootfs/var/run/postgresql" "$rootfs/var/lib/postgresql"
install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"

old_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
cp "$here/Dockerfile" "$work/Dockerfile"
# The legacy builder suffices for FROM scratch + ADD and works without buildx.
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "PG_MAJOR=$PG_MAJOR" -t "$image" "$work" >/dev/null
new_id="$(docker image inspect --format '{{.Id}}' "$image")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true   # the replaced build, unless a container uses it
fi
echo "build-image.sh: built $image ($method)"
