#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what the tests need, check formatting and lints,
# build every binary, run every test (including the lab tests that need root), then one short
# real `faultline test` against the bundled Raft cluster with faults, which must be valid.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing the targets and lab tools"
bash scripts/install-targets.sh

if ! command -v cargo-nextest >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "building (the integration tests start the faultline and faultline-raft binaries)"
cargo build --workspace --bins

step "tests"
if [ "$(id -u)" -eq 0 ]; then
    cargo nextest run --workspace --run-ignored all
else
    echo "not root: the lab tests (network namespaces, nftables) are skipped; run as root for all"
    cargo nextest run --workspace
fi

step "a short real run: bundled Raft, 5 nodes, partitions, kills, pauses and clock faults"
target/debug/faultline test --time-limit 20 --nemesis-interval 4 --results target/ci-results
