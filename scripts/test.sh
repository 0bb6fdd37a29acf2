#!/usr/bin/env bash
# The whole test suite: install what the tests need, check formatting and lints, run every
# test (including the lab tests that need root), then one short real run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
