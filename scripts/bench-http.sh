#!/usr/bin/env bash
# The example service under HTTP load (BENCHMARKS.md, "The service under
# HTTP load"): installs wrk if missing (Debian's package; the mirror comes
# from the machine's own apt configuration), builds the release service and
# runs `pool-bench --http` with the arguments given (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

bash scripts/setup.sh
if ! command -v wrk >/dev/null; then
    echo "bench-http: installing wrk"
    install_wrk() {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
    }
    # setup.sh has just refreshed the package lists on a fresh machine;
    # refresh them again (slow) only if they do not know wrk.
    install_wrk 2>/dev/null || { as_root apt-get update -qq && install_wrk; }
fi
cargo build --release -p pool-examples --bin service
cargo build --release -p pool-bench
cargo run --release -p pool-bench -- --http "$@"
