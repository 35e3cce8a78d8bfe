#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine. Idempotent; runs as
# root (CI) or with sudo. Package mirrors come from the machine's own apt
# configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/initdb" ] || ! command -v psql >/dev/null || ! id postgres >/dev/null 2>&1; then
    echo "setup: installing PostgreSQL 15 server binaries"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql-15 postgresql-client-15 >/dev/null
    # The Debian package starts a cluster of its own; the tests start theirs.
    as_root systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
# PgBouncer for pool-testkit's PgBouncer tests (Debian's package: 1.18 on bookworm).
if [ ! -x /usr/sbin/pgbouncer ]; then
    echo "setup: installing pgbouncer"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        pgbouncer >/dev/null
    # The package enables a service of its own; the tests start their own.
    as_root systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi
if ! command -v cargo-nextest >/dev/null; then
    echo "setup: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

if docker info >/dev/null 2>&1; then
    bash pool-testkit/docker/build-image.sh
    bash pool-testkit/docker/build-pgbouncer-image.sh
else
    echo "setup: no Docker daemon answers: container-backed tests will report SKIP; the local-binaries backend is used"
fi
