#!/usr/bin/env bash
# The test command of the README: prerequisites, then every test of the
# workspace: doc tests, then unit, integration (against real PostgreSQL,
# Docker and SQLite) and trybuild UI tests under nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if docker info >/dev/null 2>&1; then
    # The image was built by setup.sh: the Docker-backed tests must run, not SKIP.
    export POOL_TESTKIT_REQUIRE_DOCKER=1
fi
cargo test --workspace --doc
cargo nextest run --workspace --no-fail-fast
