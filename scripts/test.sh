#!/usr/bin/env bash
# The test command of the README: prerequisites, then every test of the
# workspace (unit, integration against real PostgreSQL and SQLite, UI and
# doc tests), then a one-second smoke run of the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
